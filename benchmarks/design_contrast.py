"""Benchmark: why the judge does not always prefer the y = single-phase decode at a fixed z (diagnostic).

For each split seed the default is fitted as ``pyro-hea train --seed SEED`` does,
and ``--mode latent --n N`` design (design seed 0) is judged by the selection
judge of ``benchmarks/design_selection.py`` (training and validation rows only;
no test label is read; as in every design, a decode that repeats a known
composition, test ones included, is "known alloy"). The fixed-z comparison is split by whether the y =
multi-phase decode still meets the composition rules, and it is repeated with
the class positions changed after training, which leaves every y =
single-phase decode (and so every candidate) as it is and moves only the
contrast decode:

- ``trained``: the fitted model at its trained class positions;
- ``scale=L``: mu_0 moved to mu_1 + L (mu_0 - mu_1), the contrast L times as far;
- ``hea positions``: mu_y set to the class means of m(x) over the training
  alloys with at least 4 principal elements (``PhaseVAE.latent_class_means``),
  the phase contrast among high-entropy alloys;
- ``pool rules``: z drawn from every training alloy meeting the rules, of
  either class, instead of the single-phase ones (a different design);
- ``contrast position``: the default's fitted multi-phase position
  (:func:`~pyro_hea.design.contrast.ensure_contrast_position`), after the rest;
- ``family positions``: one position per class *and alloy family*, mu_y
  set to the class means over the family's training alloys; each family of
  the pool gets its share of the draws (``family draws, trained positions``
  is the same draws at the trained positions, for comparison, and
  ``FAMILY draws, trained positions`` each family's part of them alone).

These are diagnostics of the default, not candidates for it: none is
selected, and none changes the package. Rows go to
``docs/results/design_contrast.{csv,md}``.

Usage::

    python benchmarks/design_contrast.py
    python benchmarks/design_contrast.py --seeds 0 --n 500 --steps 20 --out-dir /tmp/dc  # tiny
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
sys.path.insert(0, str(REPO / "benchmarks"))

from design_selection import selection_judge  # noqa: E402  (after the path is set)

DEFAULT_OUT = REPO / "docs" / "results"
SCALES = (0.5, 0.75, 1.25)
COLUMNS = {  # column: heading
    "judge_prefers_pct": "judge prefers y = 1 (%)",
    "contrast_valid_pct": "y = 0 decode meets the rules (%)",
    "prefers_if_valid_pct": "judge prefers y = 1, y = 0 decode valid (%)",
    "prefers_if_invalid_pct": "judge prefers y = 1, y = 0 decode not valid (%)",
    "invalid_binary_pct": "of the not valid y = 0 decodes: 1-2 principal elements (%)",
    "model_prefers_pct": "model prefers y = 1 (%)",
    "apart_pct": "decodes apart (at.%)",
    "accepted_pct": "accepted (%)",
    "judged_pct": "judged single-phase, of accepted (%)",
}


def contrast_row(designer, results) -> dict:
    """The fixed-z comparison of one design (or of several, pooled), split by whether the contrast decode is valid."""
    from pyro_hea.design.space import principal_elements

    results = results if isinstance(results, list) else [results]
    judges = [np.nan_to_num(r.table.attrs["p_judge_all"]).argmax(axis=1) == 1 for r in results]
    columns = ["scored", "p_judge", "p_judge_contrast", "p_model", "p_model_contrast", "valid_contrast",
               "accepted", "contrast_distance"]
    t = pd.concat([pd.DataFrame({c: r.table[c].to_numpy() for c in columns}) for r in results], ignore_index=True)
    contrast = np.concatenate([r.contrast for r in results])
    both = (t["scored"] & t["p_judge_contrast"].notna()).to_numpy()
    prefers = (t["p_judge"] > t["p_judge_contrast"]).to_numpy()
    model_prefers = (t["p_model"] > t["p_model_contrast"]).to_numpy()
    valid = t["valid_contrast"].to_numpy(bool)
    elements = principal_elements(np.nan_to_num(contrast), designer.rules)
    accepted = t["accepted"].to_numpy(bool)
    judged = np.concatenate(judges)

    def pct(values, mask) -> float:
        return 100 * float(values[mask].mean()) if mask.any() else float("nan")

    invalid = both & ~valid
    return {"judge_prefers_pct": pct(prefers, both), "contrast_valid_pct": pct(valid, both),
            "prefers_if_valid_pct": pct(prefers, both & valid), "prefers_if_invalid_pct": pct(prefers, invalid),
            "invalid_binary_pct": pct(elements <= 2, invalid), "model_prefers_pct": pct(model_prefers, both),
            "apart_pct": float(t.loc[both, "contrast_distance"].mean()), "accepted_pct": 100 * float(accepted.mean()),
            "judged_pct": pct(judged, accepted & t["scored"].to_numpy(bool))}


def diagnose(designer, n: int, seed: int = 0) -> list[dict]:
    """Every diagnostic design of ``designer``'s model (its class positions are restored after each)."""
    import torch

    from pyro_hea.data.families import FAMILIES, family_matrix
    from pyro_hea.design.space import principal_elements
    from pyro_hea.errors import PyroHeaError

    model = designer.model
    weight = model.vae.decoder.class_shift.weight
    trained = weight.detach().clone()  # (latent_dim, K): column y is mu_y

    def run(mu=None, pool: str = "target", n_draws: int = n, family=None):
        with torch.no_grad():
            weight.copy_(trained if mu is None else mu)
        try:
            return designer.latent(n=n_draws, target="single-phase", seed=0, pool=pool, family=family)
        finally:
            with torch.no_grad():
                weight.copy_(trained)

    def design(name: str, mu=None, pool: str = "target") -> dict:
        return {"variant": name, "seed": seed, **contrast_row(designer, run(mu, pool))}

    rows = [design("trained")]
    for scale in SCALES:
        mu = trained.clone()
        mu[:, 0] = trained[:, 1] + scale * (trained[:, 0] - trained[:, 1])
        rows.append(design(f"scale={scale:g}", mu))
    alloys = model.tensors(designer.df.iloc[designer.train_rows])
    alloys.y = torch.where(torch.as_tensor(designer.train_labelled), alloys.y, torch.full_like(alloys.y, -1))
    many = principal_elements(alloys.x.numpy().astype(float), designer.rules) >= 4
    rows.append(design("hea positions", model.vae.latent_class_means(alloys[np.flatnonzero(many)]).T))
    rows.append(design("pool rules", pool="rules"))
    # one position per class and family: each family's share of the draws, at its own class means
    groups = family_matrix(designer.vocabulary)
    alloy_family = (alloys.x.numpy() @ groups).argmax(axis=1)
    pool_family = (designer.design_pool("target")[0].x.numpy() @ groups).argmax(axis=1)
    parts = {"family draws, trained positions": [], "family positions": []}
    for f in np.unique(pool_family):
        n_f = int(round(n * float(np.mean(pool_family == f))))
        if n_f == 0:
            continue
        members = alloys[np.flatnonzero(alloy_family == f)]
        try:
            own = model.vae.latent_class_means(members).T
        except PyroHeaError:  # a family with one class only keeps the trained positions
            own = None
        parts["family draws, trained positions"].append(run(n_draws=n_f, family=FAMILIES[f]))
        parts["family positions"].append(run(own, n_draws=n_f, family=FAMILIES[f]))
    for name, results in parts.items():
        rows.append({"variant": name, "seed": seed, **contrast_row(designer, results)})
    for f, result in zip([f for f in np.unique(pool_family) if round(n * float(np.mean(pool_family == f)))],
                         parts["family draws, trained positions"]):
        rows.append({"variant": f"{FAMILIES[f]} draws, trained positions", "seed": seed,
                     **contrast_row(designer, result)})
    return rows


def run_seed(seed: int, n: int, steps: int | None = None) -> list[dict]:
    """Fit the default on split ``seed`` and run every diagnostic design on it."""
    import torch

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.design.contrast import ensure_contrast_position
    from pyro_hea.design.designer import Designer

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=seed)
    started = time.perf_counter()
    model = PhaseModel.fit(df, split, progress=False, seed=seed, **({"steps": steps} if steps else {}))
    # the trained positions first; the default's contrast position is the last row
    designer = Designer(model, df, split, judge=selection_judge(df, split, model.n_classes), contrast_position=False)
    rows = diagnose(designer, n, seed)
    if ensure_contrast_position(model, df, split) is not None:
        rows.append({"variant": "contrast position", "seed": seed,
                     **contrast_row(designer, designer.latent(n=n, target="single-phase", seed=0))})
    for row in rows:
        row["seconds"] = time.perf_counter() - started
    return rows


def _cell(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.1f}"


def markdown(table: pd.DataFrame, command: str) -> str:
    """Medians over split seeds per diagnostic, then the trained model's every seed."""
    lines = ["# Design: the fixed-z comparison of the default, taken apart (diagnostic)", "",
             f"`{command}`", "",
             "The default is fitted per split seed as `pyro-hea train --seed SEED` does and designs with",
             "`--mode latent` (design seed 0); the judge is trained on the training and validation rows",
             "only. The class positions are changed after training, which moves only the y = multi-phase",
             "decode. Diagnostics, not candidates: nothing here was selected. Medians over split seeds.", "",
             "| diagnostic | " + " | ".join(COLUMNS.values()) + " | seeds |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for variant in dict.fromkeys(table["variant"]):
        part = table[table["variant"] == variant]
        lines.append(f"| {variant} | " + " | ".join(_cell(part[c].median()) for c in COLUMNS)
                     + f" | {part['seed'].nunique()} |")
    seeds = sorted(table["seed"].unique())
    lines += ["", "## Per split seed: the judge prefers y = 1 at a fixed z (%)", "",
              "| diagnostic | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for variant in dict.fromkeys(table["variant"]):
        part = table[table["variant"] == variant].set_index("seed")["judge_prefers_pct"]
        lines.append(f"| {variant} | " + " | ".join(_cell(part.get(s, float("nan"))) for s in seeds) + " |")
    lines += ["", "## Per split seed, the trained model", "",
              "| seed | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for _, row in table[table["variant"] == "trained"].iterrows():
        lines.append(f"| {row['seed']} | " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=10_000, help="latent draws per design")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, args.n, args.steps)
        trained = next(r for r in rows if r["seed"] == seed and r["variant"] == "trained")
        print(f"seed {seed}: judge prefers y=1 at a fixed z {trained['judge_prefers_pct']:.1f} % "
              f"({trained['prefers_if_valid_pct']:.1f} % where the y=0 decode is valid), "
              f"{rows[-1]['seconds']:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out_dir / "design_contrast.csv", index=False, float_format="%.6g")
    command = ("python benchmarks/design_contrast.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = markdown(table, command)
    (args.out_dir / "design_contrast.md").write_text(text)
    print(text)
    return table


if __name__ == "__main__":
    main()
