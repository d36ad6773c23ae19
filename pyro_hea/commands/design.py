"""``pyro-hea design``: screening, latent design, iterative inversion and interpolation."""

from __future__ import annotations

import json
from pathlib import Path

from pyro_hea.design.space import DEFAULT_PALETTE, CompositionRules
from pyro_hea.design.novelty import NOVELTY_THRESHOLD

MODES = ("screen", "latent", "invert", "interpolate")
POOLS = ("target", "rules", "all")  # pyro_hea.design.latent.POOLS (not imported here: it loads torch)


#: The defaults of :func:`add_space_arguments` (``pyro-hea train`` fills them in itself).
SPACE_DEFAULTS = {"palette": ",".join(DEFAULT_PALETTE), "k": 5, "grid_step": None, "grid_min": 5.0, "grid_max": 35.0}


def add_space_arguments(group, palette_help: str, defaults: bool = True) -> None:
    """``--palette``, ``--k``, ``--grid-step``, ``--grid-min``, ``--grid-max``: a generated space.

    ``design --mode screen`` and ``train --unlabelled-space`` share them;
    with ``defaults=False`` an option left out is None (so that ``train``
    can tell whether it was given) and :data:`SPACE_DEFAULTS` holds the value.
    """
    default = (lambda name: SPACE_DEFAULTS[name]) if defaults else (lambda name: None)
    group.add_argument("--palette", default=default("palette"), help=palette_help)
    group.add_argument("--k", type=int, default=default("k"), help="elements per alloy of the generated space "
                                                                 "(default 5)")
    group.add_argument("--grid-step", type=float, help="at.%% step of a non-equimolar grid (else equimolar alloys)")
    group.add_argument("--grid-min", type=float, default=default("grid_min"),
                       help="lowest at.%% of an element on the grid (default 5)")
    group.add_argument("--grid-max", type=float, default=default("grid_max"),
                       help="highest at.%% of an element on the grid (default 35)")


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
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--target", default="1", help="target class, by name (e.g. single-phase) or index (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (latent; the proposals of invert)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    g = p.add_argument_group("screen and palette")
    g.add_argument("--input", help="CSV file with a formula column to screen (else a generated space)")
    g.add_argument("--formula-column", default="formula", help="column of --input with the formulas")
    add_space_arguments(g, "comma-separated elements of the generated space (screen) and of decoded alloys "
                           "(latent, invert, interpolate); default: the common HEA elements; 'all' lets decodes "
                           "use the model's whole vocabulary")
    g = p.add_argument_group(
        "screening at scale", "stream a generated space in chunks and keep the best rows (on Dask); used when "
        "any of these is given, when DASK_SCHEDULER_ADDRESS is set, or when the space is too large to build")
    g.add_argument("--top", type=int, help="rows to keep and write, best first (default 1000)")
    g.add_argument("--chunk-size", type=int, help="alloys per task (default 20000)")
    g.add_argument("--workers", type=int,
                   help="local worker processes (default 1: in this process, no cluster to start)")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT "
                                       "(default: the DASK_SCHEDULER_ADDRESS environment variable)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("latent")
    g.add_argument("--n", type=int, default=1000, help="latent points to draw (per round with --n-accepted)")
    g.add_argument("--n-accepted", type=int,
                   help="draw rounds of --n points until this many candidates are accepted (at most 20 rounds)")
    g.add_argument("--source", choices=("prior", "posterior"), default="posterior",
                   help="draw z from the aggregate posterior of training alloys (default) or from the prior")
    g.add_argument("--pool", choices=POOLS, default="target",
                   help="training alloys behind posterior draws: 'target' (default): those that meet the "
                        "composition rules and are of the target class; 'rules': any class; 'all'")
    g.add_argument("--spread", type=float, default=1.0,
                   help="scale factor on the posterior's standard deviation (default 1; latent and invert)")
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
    g.add_argument("--proposals", type=int, default=64,
                   help="latent draws per step of the inversion's search inside the composition rules "
                        "(default 64; 0: the plain iteration, which can leave the rules)")
    g.add_argument("--steps", type=int, default=11, help="points along the interpolation path")
    g.add_argument("--refine-steps", type=int, default=50,
                   help="L-BFGS iterations from the encoder's mean to the posterior mode of z (0: the mean)")
    g = p.add_argument_group("composition rules and novelty")
    r = CompositionRules()
    g.add_argument("--min-percent", type=float, default=r.min_percent,
                   help="smallest at.%% of a principal element: decoded elements below it are dropped, and "
                        "they do not count towards --min-elements (default 5)")
    g.add_argument("--max-percent", type=float, default=r.max_percent,
                   help="largest at.%% of any one element in a valid candidate (default 100: no bound; 35 is the "
                        "usual HEA share)")
    g.add_argument("--resolution", type=float, default=r.resolution, help="at.%% grid decoded alloys are rounded to")
    g.add_argument("--min-elements", type=int, default=r.min_elements,
                   help=f"fewest principal elements of a valid candidate (default {r.min_elements}: high-entropy)")
    g.add_argument("--max-elements", type=int, default=r.max_elements,
                   help=f"most principal elements of a valid candidate (default {r.max_elements})")
    g.add_argument("--exclude", default="", help="comma-separated elements decoded alloys may not contain, e.g. Co,Ni")
    g.add_argument("--allow-radioactive", action="store_true",
                   help="let decoded alloys hold radioactive elements (Tc, Pm, Th, U, ...; never by default)")
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
        table = pd.read_csv(path, dtype={column: str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DesignError(f"cannot read {path!r} as CSV: {err}") from None
    if column not in table.columns:
        raise DesignError(f"{path!r} has no column {column!r} (columns: {list(table.columns)})")
    formulas = table[column].astype(str).str.strip().tolist()
    if not formulas:
        raise DesignError(f"{path!r} has no formulas in column {column!r}")
    empty = [i for i, f in enumerate(formulas) if not f]
    if empty:
        rows = ", ".join(str(i + 2) for i in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise DesignError(f"{path!r} has {len(empty)} empty formula(s) in column {column!r} (line {rows}); "
                          "fill them in or remove the rows, so that input_index lines up with the file")
    return formulas


def _elements(text: str) -> list[str]:
    return [el.strip() for el in text.split(",") if el.strip()]


def _screen(designer, args, alloys, palette, target):
    """The serial screen, or the chunked one (:mod:`pyro_hea.design.distributed`) when asked for or needed."""
    import os

    from pyro_hea.design.designer import DesignError
    from pyro_hea.design.space import MAX_SPACE, MAX_STREAMED_SPACE, _count_text

    asked = [f"--{n.replace('_', '-')}" for n in ("top", "chunk_size", "workers", "scheduler")
             if getattr(args, n) is not None]
    if alloys is not None:
        if asked:
            raise DesignError(f"{', '.join(asked)} screen a generated space in chunks; leave out --input")
        return designer.screen(alloys, target=target)
    from pyro_hea.design.distributed import SpaceSpec, screen_space

    spec = SpaceSpec(tuple(palette), args.k, args.grid_step, args.grid_min, args.grid_max)
    if spec.size > MAX_STREAMED_SPACE:  # counted, not enumerated: refuse at once, before any chunk runs
        raise DesignError(
            f"the generated space has {_count_text(spec.size)} alloys, more than the limit of "
            f"{MAX_STREAMED_SPACE:,} even in chunks: use a coarser --grid-step, a smaller --palette or a "
            "narrower --grid-min/--grid-max"
        )
    if not (asked or os.environ.get("DASK_SCHEDULER_ADDRESS") or spec.size > MAX_SPACE):
        return designer.screen(target=target, palette=palette, k=args.k, grid_step=args.grid_step,
                               min_percent=args.grid_min, max_percent=args.grid_max)
    result = screen_space(designer, spec, target=target, top=1000 if args.top is None else args.top,
                          chunk_size=20_000 if args.chunk_size is None else args.chunk_size,
                          workers=1 if args.workers is None else args.workers, scheduler=args.scheduler,
                          progress=not args.quiet)
    s = result.summary
    if not args.json:
        print(f"kept the best {s['top']:,} of {s['generated']:,} alloys; {s['chunks']:,} chunk(s) on "
              f"{s['scheduler']} ({s['workers']} worker(s))")
    return result


def run_design(args) -> int:
    from pyro_hea.design.designer import Designer, DesignError, format_summary  # torch loads only when a command runs

    palette = _elements(args.palette)
    decode_palette = None if [el.lower() for el in palette] == ["all"] else tuple(palette)
    rules = CompositionRules(min_percent=args.min_percent, max_percent=args.max_percent, resolution=args.resolution,
                             min_elements=args.min_elements, max_elements=args.max_elements,
                             palette=decode_palette, exclude=tuple(_elements(args.exclude)),
                             allow_radioactive=args.allow_radioactive)
    if args.mode == "invert":
        _need(args, "start")
    if args.mode == "interpolate":
        _need(args, "start", "end")
    alloys = _read_formulas(args.input, args.formula_column) if args.mode == "screen" and args.input else None
    out = Path(args.out)
    if out.is_dir():
        raise DesignError(f"--out {args.out!r} is a directory; give a CSV file name")
    if out.exists() and not args.force:
        raise FileExistsError(f"--out {args.out!r} exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise DesignError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist")
    designer = Designer.from_run(args.run_dir, rules=rules, novelty_threshold=args.novelty_threshold)
    target = designer.class_index(args.target)
    if args.mode == "screen":
        if decode_palette is None:
            raise DesignError("--palette all applies to decoded alloys; a generated space needs its elements")
        result = _screen(designer, args, alloys, palette, target)
    elif args.mode == "latent":
        result = designer.latent(
            n=args.n, target=target, contrast=args.contrast, source=args.source, family=args.family,
            seed=args.seed, deduplicate=not args.keep_duplicates, compare=not args.no_compare,
            accept=args.accept, pool=args.pool, spread=args.spread, n_accepted=args.n_accepted,
        )
    elif args.mode == "invert":
        result = designer.invert(args.start, target=target, threshold=args.threshold, max_steps=args.max_steps,
                                 refine_steps=args.refine_steps, proposals=args.proposals, spread=args.spread,
                                 seed=args.seed)
    else:
        result = designer.interpolate(args.start, args.end, target=target, steps=args.steps,
                                      refine_steps=args.refine_steps)
    result.to_csv(out)
    if args.json:
        print(json.dumps(result.summary, default=float))
    else:
        print(format_summary(result.summary))
        print(f"wrote {args.out}")
    return 0
