"""Benchmark: compare pyro-hea variants on latent design, judged without the test labels (model selection).

``benchmarks/design.py`` checks the design targets with the package's judge,
which is trained on *every* labelled alloy, test rows included. To choose
between model variants by how they design, this script uses a selection judge
instead: the same gradient-boosted trees (:class:`~pyro_hea.design.judge.Judge`)
trained on the training and validation rows of each split only. For each split
seed it fits the variant as ``pyro-hea train --seed SEED`` does
(``PhaseModel.fit`` on ``paper_split(df, seed)``, training seed = split seed),
runs what ``pyro-hea design RUN --mode latent --n N`` runs (design seed 0), and
reports, per split seed and as the median over them:

- accepted, of the distinct decodes (%);
- judged single-phase by the selection judge, of the accepted (%);
- at a fixed z, the share where the selection judge prefers the y =
  single-phase decode to the y = multi-phase one (%), the mean p_judge of the
  two decodes, and how far apart they are (at.%);
- at a fixed z, the share where the model itself prefers the y = 1 decode (%).

No test label is read (as in every design, the novelty check knows every composition of the
dataset, test ones included, so a decode that repeats one is "known alloy"). Each run adds its
variant's rows to
``docs/results/design_selection.{csv,md}``.

``--judge all`` uses the package's own judge instead (every labelled alloy, test
rows included), as ``benchmarks/design.py`` does, to report how the design
target varies over trained models. That is an evaluation, not a selection, and
its rows go to ``design_all_judge.{csv,md}``.

Usage::

    python benchmarks/design_selection.py
    python benchmarks/design_selection.py --set class_position_lr_factor=1
    python benchmarks/design_selection.py --judge all   # the package's judge: evaluation only
    python benchmarks/design_selection.py --seeds 0 --n 500 --steps 20 --out-dir /tmp/ds  # tiny
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyro_hea.commands.options import variant_name  # noqa: E402  (after the path is set)

DEFAULT_OUT = REPO / "docs" / "results"
COLUMNS = {  # column: heading
    "accepted_pct": "accepted, of distinct (%)",
    "judged_pct": "judged single-phase, of accepted (%)",
    "judge_prefers_pct": "same z: judge prefers y = 1 (%)",
    "model_prefers_pct": "same z: model prefers y = 1 (%)",
    "contrast_valid_pct": "same z: y = 0 decode meets the rules (%)",
    "judge_prefers_valid_pct": "same z, both meet the rules: judge prefers y = 1 (%)",
    "p_judge_y1": "same z: p_judge, y = 1",
    "p_judge_y0": "same z: p_judge, y = 0",
    "apart_pct": "same z: decodes apart (at.%)",
}


def selection_judge(df: pd.DataFrame, split: pd.Series, n_classes: int = 2):
    """The design judge trained on the training and validation rows only (never on test).

    Examples
    --------
    >>> from pyro_hea import load_dataset, paper_split
    >>> df = load_dataset("pei2020")
    >>> split = paper_split(df, seed=0)
    >>> selection_judge(df, split).n_train == int(((split != "test") & df["single_phase"].notna()).sum())
    True
    """
    from pyro_hea.design.judge import Judge

    return Judge.fit(df[(split != "test").to_numpy()], n_classes, seed=0)


def run_seed(seed: int, settings: dict, n: int, steps: int | None = None, judge: str = "selection") -> dict:
    """Fit one variant on split ``seed`` and design ``n`` alloys; the judge (``"selection"`` or ``"all"``) scores them."""
    import torch

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.design.designer import Designer
    from pyro_hea.design.judge import Judge

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=seed)
    started = time.perf_counter()
    model = PhaseModel.fit(df, split, progress=False, **{"seed": seed, **({"steps": steps} if steps else {}),
                                                         **settings})
    chosen = selection_judge(df, split, model.n_classes) if judge == "selection" else Judge.fit(df, model.n_classes)
    designer = Designer(model, df, split, judge=chosen)
    result = designer.latent(n=n, target="single-phase", seed=0)
    s, c = result.summary, result.summary["contrast"]
    return {"variant": variant_name(settings), "seed": seed, "accepted_pct": 100 * s["accept_rate"],
            "judged_pct": 100 * s["judged_target"], "judge_prefers_pct": 100 * c["judge_prefers_target"],
            "model_prefers_pct": 100 * c["model_prefers_target"], "p_judge_y1": c["p_judge_target"],
            "contrast_valid_pct": 100 * c["contrast_valid"], "judge_prefers_valid_pct": 100 * c["judge_prefers_target_valid"],
            "p_judge_y0": c["p_judge_contrast"], "apart_pct": c["mean_distance"],
            "seconds": time.perf_counter() - started}


def _cell(part: pd.DataFrame, column: str) -> str:
    """The median over seeds, or an em dash for a column the variant's rows predate."""
    if column not in part or part[column].isna().all():
        return "—"
    return f"{part[column].median():.3g}" if column.startswith("p_") else f"{part[column].median():.1f}"


def markdown(table: pd.DataFrame, command: str, judge: str = "selection") -> str:
    """Medians over split seeds per variant (the default first), then every seed's row."""
    if judge == "selection":
        head = ["# Design of pyro-hea variants, judged without the test labels (model selection)", "",
                f"`{command}`", "",
                "Each variant is fitted on split seeds as `pyro-hea train --seed SEED` does, then designs with",
                "`--mode latent` (design seed 0). The judge is trained on the training and validation rows",
                "only; no test label was read. Medians over split seeds. Every row here counts towards pyro-hea's",
                "selection budget.", ""]
    else:
        head = ["# Design of pyro-hea variants over trained models, with the package's judge (evaluation)", "",
                f"`{command}`", "",
                "Each variant is fitted on split seeds as `pyro-hea train --seed SEED` does, then designs with",
                "`--mode latent` (design seed 0). The judge is the package's, trained on every labelled alloy,",
                "test rows included, as in `benchmarks/design.py`; so nothing was selected on these rows.",
                "Medians over split seeds.", ""]
    lines = head + ["| variant | " + " | ".join(COLUMNS.values()) + " | seeds |",
                    "|---" * (len(COLUMNS) + 2) + "|"]
    order = sorted(dict.fromkeys(table["variant"]), key=lambda v: v != "default")
    for variant in order:
        part = table[table["variant"] == variant]
        lines.append(f"| {variant} | " + " | ".join(_cell(part, c) for c in COLUMNS)
                     + f" | {part['seed'].nunique()} |")
    lines += ["", "## Per split seed: the judge prefers y = 1 at a fixed z (%)", "",
              "| variant | " + " | ".join(f"seed {s}" for s in sorted(table["seed"].unique())) + " |",
              "|---" * (table["seed"].nunique() + 1) + "|"]
    for variant in order:
        part = table[table["variant"] == variant].set_index("seed")["judge_prefers_pct"]
        lines.append(f"| {variant} | " + " | ".join(f"{part[s]:.1f}" if s in part else ""
                                                    for s in sorted(table["seed"].unique())) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> pd.DataFrame:
    from pyro_hea.commands.options import parse_settings
    from pyro_hea.errors import PyroHeaError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=10_000, help="latent draws per design")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="PhaseModel.fit overrides of the variant (default: the package default)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--judge", choices=["selection", "all"], default="selection",
                        help="'selection': trained on the training and validation rows (default); "
                             "'all': the package's judge, every labelled alloy (evaluation only)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.set)
    except PyroHeaError as err:
        raise SystemExit(f"design_selection.py: {err}") from None
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, settings, args.n, args.steps, args.judge))
        print(f"seed {seed}: judge prefers y=1 at a fixed z {rows[-1]['judge_prefers_pct']:.1f} %, "
              f"accepted {rows[-1]['accepted_pct']:.1f} %, {rows[-1]['seconds']:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = "design_selection" if args.judge == "selection" else "design_all_judge"
    csv = args.out_dir / f"{stem}.csv"
    if csv.exists():  # keep the other variants' rows
        old = pd.read_csv(csv)
        table = pd.concat([old[old["variant"] != variant_name(settings)], table], ignore_index=True)
    table.to_csv(csv, index=False, float_format="%.6g")
    command = ("python benchmarks/design_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = markdown(table, command, args.judge)
    (args.out_dir / f"{stem}.md").write_text(text)
    print(text)
    return table


if __name__ == "__main__":
    main()
