"""Benchmark: pyro-hea on the paper-protocol split of Pei 2020 (or the corpus), seeds 0-4.

Prints, for each seed and as mean ± sd over seeds, the test AUC, accuracy,
ECE, reconstruction metrics (from the posterior mode of z, and from the
encoder's mean alone: ``*_amortized``) and wall-clock seconds per fit of pyro-hea with
its default settings (what ``pyro-hea train`` runs, the contrast position included), beside two supervised
scikit-learn baselines fit on the same labelled training rows and tuned on
the same validation rows: HistGradientBoostingClassifier and MLPClassifier
on the standardized descriptors. The test split is scored once per fit.
The baselines' ``seconds`` cover their whole grid (8 fits each);
``hgb_one_fit_seconds`` is one gradient-boosting fit with its default
settings on the same labelled rows, the plainest speed reference.
The last lines give the medians over seeds of the fit times.

Usage::

    python benchmarks/train_pei.py [--dataset pei2020|corpus] [--seeds 0 1 2 3 4] [--steps N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from pyro_hea import PhaseModel, TrainConfig, load_dataset, paper_split
from pyro_hea.design.contrast import ensure_contrast_position
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.infer.metrics import classification_metrics
from pyro_hea.data.splits import DescriptorScaler

BASELINE_GRIDS = {
    "hist-gradient-boosting": (HistGradientBoostingClassifier, {
        "learning_rate": [0.03, 0.1], "max_leaf_nodes": [15, 31], "min_samples_leaf": [5, 20]}),
    "mlp": (MLPClassifier, {
        "hidden_layer_sizes": [(100, 100), (64,)], "alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}),
}


def baseline(name: str, df, split, seed: int) -> dict:
    """Fit a baseline on labelled rows, tune on val (log-loss), score test once."""
    cls, grid = BASELINE_GRIDS[name]
    X = df[list(DESCRIPTOR_NAMES)].to_numpy(float)
    y = df["single_phase"].fillna(-1).to_numpy(int)  # unlabelled rows (-1) are never fit or scored
    rows = {k: (split == k).to_numpy() for k in ("labelled", "val", "test")}
    scaler = DescriptorScaler.fit(X[split.isin(["labelled", "unlabelled"]).to_numpy()])
    Xs = scaler.transform(X)
    best, best_score = None, np.inf
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        extra = {"max_iter": 2000, "early_stopping": False} if cls is MLPClassifier else {}
        model = cls(random_state=seed, **params, **extra).fit(Xs[rows["labelled"]], y[rows["labelled"]])
        score = log_loss(y[rows["val"]], model.predict_proba(Xs[rows["val"]]), labels=[0, 1])
        if score < best_score:
            best, best_score = model, score
    return classification_metrics(y[rows["test"]], best.predict_proba(Xs[rows["test"]]))


def one_hgb_fit(df, split, seed: int) -> float:
    """Seconds of one HistGradientBoostingClassifier fit (default settings) on the labelled rows."""
    X = df[list(DESCRIPTOR_NAMES)].to_numpy(float)
    y = df["single_phase"].to_numpy(float)
    rows = (split == "labelled").to_numpy() & ~np.isnan(y)
    started = time.perf_counter()
    HistGradientBoostingClassifier(random_state=seed).fit(X[rows], y[rows].astype(int))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--dataset", default="pei2020", choices=["pei2020", "corpus"])
    parser.add_argument("--baselines", nargs="*", default=list(BASELINE_GRIDS), choices=list(BASELINE_GRIDS),
                        help="baseline grids to fit beside pyro-hea (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    df = load_dataset(args.dataset)
    rows = []
    for seed in args.seeds:
        split = paper_split(df, seed=seed)
        started = time.perf_counter()
        model = PhaseModel.fit(df, split, progress=False, seed=seed, steps=args.steps)
        ensure_contrast_position(model, df, split)  # as pyro-hea train does before it saves
        seconds = time.perf_counter() - started
        test = model.evaluate(df, (split == "test").to_numpy())
        st = model.trainer.state
        rows.append({"method": "pyro-hea", "seed": seed, "seconds": seconds, "best_step": st.best_step,
                     "best_elbo_step": st.best_elbo_step, "steps": st.step, **test})
        rows[-1]["hgb_one_fit_seconds"] = one_hgb_fit(df, split, seed)
        for name in args.baselines:
            started = time.perf_counter()
            metrics = baseline(name, df, split, seed)
            rows.append({"method": name, "seed": seed, "seconds": time.perf_counter() - started, **metrics})
        for r in rows[-1 - len(args.baselines):]:
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    print()
    print(f"{args.dataset}: {int(split.isin(['labelled', 'unlabelled']).sum())} training alloys "
          f"({int((split == 'labelled').sum())} labelled); torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; pyro-hea steps={args.steps}; "
          f"seeds {args.seeds}; test split read once per fit")
    keys = ["auc", "accuracy", "ece", "brier", "recon_mae", "recon_mae_present", "recon_set_match",
            "recon_mae_present_amortized", "recon_set_match_amortized", "seconds"]
    print(f"{'method':<24}" + "".join(f"{k:>20}" for k in keys[:7]))
    print(f"{'':<24}" + "".join(f"{k:>30}" for k in keys[7:]))
    for method in ["pyro-hea", *args.baselines]:
        sub = [r for r in rows if r["method"] == method]
        cells = []
        for k in keys:
            vals = np.array([r[k] for r in sub if k in r], dtype=float)
            cells.append(f"{vals.mean():.3f} ± {vals.std(ddof=1) if len(vals) > 1 else 0:.3f}" if len(vals) else "-")
        print(f"{method:<24}" + "".join(f"{c:>20}" for c in cells[:7]))
        print(f"{'':<24}" + "".join(f"{c:>30}" for c in cells[7:]))
    med = {m: np.median([r["seconds"] for r in rows if r["method"] == m]) for m in ["pyro-hea", *args.baselines]}
    one = np.median([r["hgb_one_fit_seconds"] for r in rows if "hgb_one_fit_seconds" in r])
    print(f"median seconds per pyro-hea fit: {med['pyro-hea']:.1f}")
    print(f"median seconds per baseline grid (8 fits): " + ", ".join(f"{m} {med[m]:.1f}" for m in args.baselines))
    print(f"median seconds per single gradient-boosting fit (default settings, same labelled rows): {one:.2f}")


if __name__ == "__main__":
    main()
