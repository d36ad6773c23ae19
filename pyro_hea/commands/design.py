"""``pyro-hea design``: screening, latent design, iterative inversion and interpolation."""

from __future__ import annotations

import json
from pathlib import Path

from pyro_hea.design.space import DEFAULT_PALETTE, CompositionRules
from pyro_hea.design.novelty import NOVELTY_THRESHOLD

MODES = ("screen", "latent", "invert", "interpolate")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "design", help="design alloys with a trained run: screen, latent, invert or interpolate",
        description="Design alloys with a trained model. Every candidate is checked for validity, "
                    "novelty against the run's dataset and by an independent judge (gradient-boosted "
                    "trees on the descriptors); the table is written as CSV and a summary printed.",
    )
    p.add_argument("run_dir", help="a run directory written by pyro-hea train")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--out", required=True, help="CSV file to write, one row per candidate or step")
    p.add_argument("--target", default="1", help="target class, by name (e.g. single-phase) or index (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    g = p.add_argument_group("screen")
    g.add_argument("--input", help="CSV file with a formula column to screen (else a generated space)")
    g.add_argument("--formula-column", default="formula", help="column of --input with the formulas")
    g.add_argument("--palette", default=",".join(DEFAULT_PALETTE),
                   help="comma-separated elements of the generated space (default: common HEA elements)")
    g.add_argument("--k", type=int, default=5, help="elements per alloy of the generated space")
    g.add_argument("--grid-step", type=float, help="at.%% step of a non-equimolar grid (else equimolar alloys)")
    g.add_argument("--grid-min", type=float, default=5.0, help="lowest at.%% of an element on the grid")
    g.add_argument("--grid-max", type=float, default=35.0, help="highest at.%% of an element on the grid")
    g = p.add_argument_group("latent")
    g.add_argument("--n", type=int, default=1000, help="latent points to draw")
    g.add_argument("--source", choices=("prior", "posterior"), default="prior",
                   help="draw z from the prior or from the aggregate posterior of training alloys")
    g.add_argument("--family", help="restrict the training alloys behind the draws to one alloy family")
    g.add_argument("--contrast", help="class to decode the same z with, for comparison (default: the other class)")
    g.add_argument("--no-compare", action="store_true", help="skip decoding with the contrast class")
    g.add_argument("--accept", type=float, default=0.5,
                   help="p_model a decode needs to be accepted as a candidate (default 0.5)")
    g.add_argument("--keep-duplicates", action="store_true", help="one row per draw, not per composition")
    g = p.add_argument_group("invert and interpolate")
    g.add_argument("--start", help="starting alloy (invert, interpolate)")
    g.add_argument("--end", help="end alloy (interpolate)")
    g.add_argument("--threshold", type=float, default=0.9, help="p_model at which inversion stops")
    g.add_argument("--max-steps", type=int, default=20, help="step budget of the inversion")
    g.add_argument("--steps", type=int, default=11, help="points along the interpolation path")
    g = p.add_argument_group("composition rules and novelty")
    r = CompositionRules()
    g.add_argument("--min-percent", type=float, default=r.min_percent, help="drop decoded elements below this at.%%")
    g.add_argument("--resolution", type=float, default=r.resolution, help="at.%% grid decoded alloys are rounded to")
    g.add_argument("--min-elements", type=int, default=r.min_elements, help="fewest elements of a valid candidate")
    g.add_argument("--max-elements", type=int, default=r.max_elements, help="most elements of a valid candidate")
    g.add_argument("--exclude", default="", help="comma-separated elements decoded alloys may not contain, e.g. Th,U")
    g.add_argument("--novelty-threshold", type=float, default=NOVELTY_THRESHOLD,
                   help="composition distance (at.%%) above which a candidate is novel")
    p.set_defaults(run=run_design)


def _need(args, *names: str) -> None:
    from pyro_hea.design.designer import DesignError

    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise DesignError(f"--mode {args.mode} needs {' and '.join(missing)}")


def _read_formulas(path: str, column: str) -> list[str]:
    import pandas as pd

    from pyro_hea.design.designer import DesignError

    if not Path(path).is_file():
        raise FileNotFoundError(f"no input file at {path!r}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DesignError(f"cannot read {path!r} as CSV: {err}") from None
    if column not in table.columns:
        raise DesignError(f"{path!r} has no column {column!r} (columns: {list(table.columns)})")
    formulas = table[column].dropna().astype(str).tolist()
    if not formulas:
        raise DesignError(f"{path!r} has no formulas in column {column!r}")
    return formulas


def run_design(args) -> int:
    from pyro_hea.design.designer import Designer, format_summary  # torch loads only when a command runs

    rules = CompositionRules(min_percent=args.min_percent, resolution=args.resolution,
                             min_elements=args.min_elements, max_elements=args.max_elements,
                             exclude=tuple(el.strip() for el in args.exclude.split(",") if el.strip()))
    if args.mode == "invert":
        _need(args, "start")
    if args.mode == "interpolate":
        _need(args, "start", "end")
    designer = Designer.from_run(args.run_dir, rules=rules, novelty_threshold=args.novelty_threshold)
    target = designer.class_index(args.target)
    if args.mode == "screen":
        alloys = _read_formulas(args.input, args.formula_column) if args.input else None
        palette = [el.strip() for el in args.palette.split(",") if el.strip()]
        result = designer.screen(alloys, target=target, palette=palette, k=args.k, grid_step=args.grid_step,
                                 min_percent=args.grid_min, max_percent=args.grid_max)
    elif args.mode == "latent":
        result = designer.latent(
            n=args.n, target=target, contrast=args.contrast, source=args.source, family=args.family,
            seed=args.seed, deduplicate=not args.keep_duplicates, compare=not args.no_compare,
            accept=args.accept,
        )
    elif args.mode == "invert":
        result = designer.invert(args.start, target=target, threshold=args.threshold, max_steps=args.max_steps)
    else:
        result = designer.interpolate(args.start, args.end, target=target, steps=args.steps)
    result.to_csv(args.out)
    if args.json:
        print(json.dumps(result.summary, default=float))
    else:
        print(format_summary(result.summary))
        print(f"wrote {args.out}")
    return 0
