"""Validation probe: the forest partition of q(y|x) placed by labelled and confidently pseudo-labelled alloys.

The default's forest partition (``classifier_forest_trees``) is fitted on the
labelled training alloys only, so the unlabelled ones do not place it. This
probe asks whether they can, by self-training: for each label fraction and
split seed it fits the default, labels every unlabelled training alloy whose
q(y|x) is at least ``--tau`` with its predicted class, refits the forest on
the labelled and those pseudo-labelled alloys, and trains the model again
from the same seed (the classification loss and the ELBO still see only the
real labels). The second fit is the first one with only the forest's labels
changed: the same seed and the same random stream (with no pseudo-label it
is the first fit bit for bit, ``fit_with_forest_labels``). Both fits are
scored on the validation labels; test is never read. The default fractions
leave out 100 % labels.

Rows go to ``docs/results/self_training_probe.{csv,md}``.

Usage::

    python benchmarks/self_training_probe.py --jobs 2
    python benchmarks/self_training_probe.py --fractions 0.1 --seeds 0 --steps 10 --out-dir /tmp/st  # tiny
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "docs" / "results"


def pseudo_labels(model, df: pd.DataFrame, split: pd.Series, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the training rows: the real ones, the predicted class where q(y|x) >= tau, else -1; and which are pseudo."""
    train = split.isin(["labelled", "unlabelled"]).to_numpy()
    part = split[train].to_numpy()
    labels = np.where(part == "labelled", df.loc[train, "single_phase"].fillna(-1).to_numpy(), -1).astype(int)
    q = model.predict_proba(df[train])
    pseudo = (part == "unlabelled") & (q.max(axis=1) >= tau)
    labels[pseudo] = q[pseudo].argmax(axis=1)
    return labels, pseudo


def fit_with_forest_labels(df: pd.DataFrame, split: pd.Series, labels: np.ndarray, **settings):
    """``PhaseModel.fit``, with the forest partition fitted on ``labels`` (one per training row, -1: none).

    Everything else is as in a plain fit, the random stream included, so with ``labels`` equal to
    the real labels of the labelled rows it gives the same model bit for bit.
    """
    import torch

    from pyro_hea import PhaseModel
    from pyro_hea.model.vae import PhaseVAE

    place = PhaseVAE.fit_feature_bins

    def with_labels(vae, features, _labels=None):
        return place(vae, features, torch.as_tensor(labels, dtype=torch.long))

    with mock.patch.object(PhaseVAE, "fit_feature_bins", with_labels):
        return PhaseModel.fit(df, split, progress=False, **settings)


def run_split(fraction: float, seed: int, tau: float, steps: int | None = None) -> list[dict]:
    """The default and its self-trained refit on one split, scored on the validation labels."""
    import torch
    from threadpoolctl import threadpool_limits

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.infer.metrics import classification_metrics, mean_log_loss

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=seed, label_fraction=fraction)
    val = (split == "val").to_numpy() & df["single_phase"].notna().to_numpy()
    y_val = df.loc[val, "single_phase"].to_numpy(int)
    extra = {"steps": steps} if steps else {}

    def score(model, variant: str, **more) -> dict:
        probs = model.predict_proba(df[val])
        return {"label_fraction": float(fraction), "seed": int(seed), "variant": variant,
                "auc": float(classification_metrics(y_val, probs)["auc"]), "log_loss": mean_log_loss(y_val, probs),
                **more}

    started = time.perf_counter()
    with threadpool_limits(limits=1):
        first = PhaseModel.fit(df, split, progress=False, seed=seed, **extra)
        labels, pseudo = pseudo_labels(first, df, split, tau)
        truth = df.loc[split.isin(["labelled", "unlabelled"]).to_numpy(), "single_phase"].to_numpy()
        known = pseudo & ~np.isnan(truth)
        second = fit_with_forest_labels(df, split, labels, seed=seed, **extra)
    return [score(first, "default"),
            score(second, f"self-trained forest, tau={tau:g}", n_pseudo=int(pseudo.sum()),
                  pseudo_accuracy=float(np.mean(labels[known] == truth[known])) if known.any() else float("nan"),
                  seconds=time.perf_counter() - started)]


def markdown(table: pd.DataFrame, command: str) -> str:
    """Mean validation AUC and log-loss by fraction, and the paired AUC difference."""
    fractions = sorted(table["label_fraction"].unique())
    base = table[table["variant"] == "default"].set_index(["label_fraction", "seed"])
    lines = ["# Self-training the forest partition (validation probe)", "", f"`{command}`", "",
             "The default is fitted, its confident predictions on the unlabelled training alloys become",
             "pseudo-labels for the forest partition only, and the model is trained again from the same seed.",
             "Validation labels only; test was not read. Means over split seeds.", "",
             "| variant | " + " | ".join(f"AUC {f:g}" for f in fractions) + " | "
             + " | ".join(f"log-loss {f:g}" for f in fractions) + " | pseudo-labels | their accuracy |",
             "|---" * (2 * len(fractions) + 3) + "|"]
    for variant in dict.fromkeys(table["variant"]):
        part = table[table["variant"] == variant]
        by = part.groupby("label_fraction")
        extra = (f" {part['n_pseudo'].mean():.0f} | {100 * part['pseudo_accuracy'].mean():.1f} % |"
                 if "n_pseudo" in part and part["n_pseudo"].notna().any() else " — | — |")
        lines.append(f"| {variant} | " + " | ".join(f"{by['auc'].mean()[f]:.4f}" for f in fractions) + " | "
                     + " | ".join(f"{by['log_loss'].mean()[f]:.3f}" for f in fractions) + " |" + extra)
    for variant in [v for v in dict.fromkeys(table["variant"]) if v != "default"]:
        diff = table[table["variant"] == variant].set_index(["label_fraction", "seed"])["auc"] - base["auc"]
        diff = diff.dropna()
        lines += ["", f"Paired AUC difference, {variant} minus the default, over {len(diff)} (fraction, seed) pairs: "
                      f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.4f} (± one standard error)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tau", type=float, default=0.9, help="q(y|x) a pseudo-label needs (default 0.9)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not 0.5 <= args.tau < 1:
        raise SystemExit(f"self_training_probe.py: --tau must be in [0.5, 1), got {args.tau}")
    jobs = [(f, s) for f in args.fractions for s in args.seeds]
    if args.jobs <= 1:  # in this process
        parts = [run_split(f, s, args.tau, args.steps) for f, s in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            parts = list(pool.map(run_split, *zip(*jobs), [args.tau] * len(jobs), [args.steps] * len(jobs)))
    table = pd.DataFrame([row for part in parts for row in part])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out_dir / "self_training_probe.csv", index=False, float_format="%.6g")
    command = ("python benchmarks/self_training_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = markdown(table, command)
    (args.out_dir / "self_training_probe.md").write_text(text)
    print(text)
    return table


if __name__ == "__main__":
    main()
