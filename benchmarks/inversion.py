"""Benchmark: the inversion's search from every multi-phase high-entropy training alloy (evaluation).

The model is the design benchmark's: ``pyro-hea train --seed SEED`` (``PhaseModel.fit`` on
``paper_split(df, seed)``). Each start is a labelled multi-phase training alloy that meets the
composition rules (at least 4 principal elements, the common HEA palette). ``Designer.invert``
searches from it towards single-phase (threshold 0.9, 20 steps, 64 proposals, seed 0), with the
default rules and with ``max_percent=35``. Per rule set it prints how many searches reach the
threshold, how many end on an alloy that meets the rules, the share of ends the package's judge
(trained on every labelled alloy, as in ``benchmarks/design.py``) calls single-phase, and medians of
the steps, of the distance from the start and of the novelty distance of the end (at.%).

Usage::

    python benchmarks/inversion.py
    python benchmarks/inversion.py --limit 5 --steps 20   # tiny
    python benchmarks/inversion.py --no-contrast-position   # the trained positions, for comparison
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def starts(designer, df: pd.DataFrame, split: pd.Series) -> list[str]:
    """Formulas of the labelled multi-phase training alloys that meet the designer's rules."""
    from pyro_hea.design.space import check_validity

    rows = np.flatnonzero((split == "labelled").to_numpy() & (df["single_phase"] == 0).to_numpy())
    x = designer.model.tensors(df.iloc[rows]).x.numpy().astype(float)
    keep = check_validity(x, designer.rules) & ~np.any((x > 0) & ~designer.rules.allowed(designer.vocabulary), axis=1)
    return df["formula"].iloc[rows[keep]].tolist()


def summarize(designer, formulas: list[str], threshold: float = 0.9) -> tuple[dict, pd.DataFrame]:
    """Run the search from each formula; the summary row and one row per search."""
    rows = []
    for formula in formulas:
        result = designer.invert(formula, target="single-phase", threshold=threshold)
        t, end = result.table, result.summary["end"]
        x = result.compositions
        rows.append({"start": formula, "end": end["formula"], "stopped": result.summary["stopped"],
                     "steps": result.summary["steps"], "meets_rules": end["valid"],
                     "reached": bool(end["valid"] and end["p_model"] >= threshold),
                     "p_model_start": float(t["p_model"].iloc[0]), "p_model_end": end["p_model"],
                     "p_judge_end": end["p_judge"], "moved_pct": float(0.5 * np.abs(x[-1] - x[0]).sum()),
                     "novelty_pct": float(t["novelty_distance"].iloc[-1])})
    table = pd.DataFrame(rows)
    moved = table[table["steps"] > 0]
    return {"searches": len(table), "reached_pct": 100 * table["reached"].mean(),
            "ends_meet_rules_pct": 100 * table["meets_rules"].mean(),
            "ends_judged_single_pct": 100 * (table["p_judge_end"] >= 0.5).mean(),
            "moved_judged_single_pct": 100 * (moved["p_judge_end"] >= 0.5).mean() if len(moved) else float("nan"),
            "median_steps": float(table["steps"].median()), "median_moved_pct": float(table["moved_pct"].median()),
            "median_novelty_pct": float(table["novelty_pct"].median())}, table


def main(argv=None) -> pd.DataFrame:
    import torch

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.design.designer import Designer
    from pyro_hea.design.space import CompositionRules

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many starts (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--no-contrast-position", dest="contrast_position", action="store_false",
                        help="keep the trained multi-phase position (the baseline of the contrast position)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=args.seed)
    model = PhaseModel.fit(df, split, progress=False, seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    out = []
    for name, rules in (("default rules", CompositionRules()), ("max_percent=35", CompositionRules(max_percent=35))):
        designer = Designer(model, df, split, rules=rules, contrast_position=args.contrast_position)
        formulas = starts(designer, df, split)[: args.limit]
        started = time.perf_counter()
        row, _ = summarize(designer, formulas)
        out.append({"rules": name, **row, "seconds": time.perf_counter() - started})
    table = pd.DataFrame(out)
    print(f"python benchmarks/inversion.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip())
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return table


if __name__ == "__main__":
    main()
