"""Benchmark: why does a random forest beat pyro-hea's classifier? Supervised probes, validation only.

Every classifier here is fitted on the labelled training rows of
``paper_split(df, seed, label_fraction)`` (Pei 2020, the 8 standardized
descriptors, the scaler fit on the training rows) and scored by ROC AUC on the
**validation** labels. The test split is never read. The probes ask which part
of the forest's inductive bias the network family lacks:

- ``random-forest``: 500 trees, min leaf 1, ``max_features="sqrt"`` (the
  forest's best grid point on validation in session 22);
- ``random-forest/all-features``: the same with every descriptor at each split;
- ``extra-trees``, ``knn-10``: random splits, and plain locality;
- ``random-trees-embedding+lr``: an unsupervised random-trees partition fitted
  on labelled *and* unlabelled training rows, then logistic regression;
- ``random-partition+lr``: pyro-hea's ``RandomPartitionEncoding`` (1,000 random
  oblivious trees of depth 5, splits at quantiles of all training rows), then
  logistic regression on the leaves;
- ``ple-mlp``: pyro-hea's classifier network (piecewise-linear encoding, 8 bins,
  hidden [64, 64]) trained alone by Adam, 300 full-batch steps;
- ``ple-mlp/subspace-20x3``: 20 such networks, each on 3 random descriptors,
  probabilities averaged (the random-subspace method);
- ``soft-trees-64x4``: 64 soft oblivious trees of depth 4, trained by Adam;
- ``ple-mlp+forest-average``: the mean of the network's and the forest's probabilities;
- ``ple-mlp/forest-residual``: the network learns a correction to the forest's
  logit (out-of-bag on the labelled rows, clipped to [0.02, 0.98]).

Usage::

    python benchmarks/classifier_probe.py              # fractions 0.05 0.1 0.25, seeds 0-4 (about 4 min)
    python benchmarks/classifier_probe.py --fractions 0.05 --seeds 0 --out-dir /tmp/cp  # tiny
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "results"
PROBES = ("random-forest", "random-forest/all-features", "extra-trees", "knn-10", "random-trees-embedding+lr",
          "random-partition+lr", "ple-mlp", "ple-mlp/subspace-20x3", "soft-trees-64x4", "ple-mlp+forest-average", "ple-mlp/forest-residual")


def _torch_probes():
    import torch
    from torch import nn

    from pyro_hea.model.networks import MLP, PiecewiseLinearEncoding

    class SoftObliviousTrees(nn.Module):
        """T soft oblivious trees of depth d on a softmax choice of descriptor per level."""

        def __init__(self, n_features: int, n_trees: int, depth: int):
            super().__init__()
            self.select = nn.Parameter(torch.randn(n_trees, depth, n_features))
            self.threshold = nn.Parameter(torch.zeros(n_trees, depth))
            self.log_sharpness = nn.Parameter(torch.full((n_trees, depth), math.log(3.0)))
            self.leaf = nn.Parameter(0.1 * torch.randn(n_trees, 2 ** depth, 2))
            self.register_buffer("codes", torch.tensor(list(itertools.product([0.0, 1.0], repeat=depth))))

        def project(self, f):
            return torch.einsum("nf,tdf->ntd", f, torch.softmax(self.select, -1))

        @torch.no_grad()
        def init_thresholds(self, f, generator):  # each threshold at a random training row's projection
            proj = self.project(f)
            rows = torch.randint(0, len(f), self.threshold.shape, generator=generator)
            t, d = torch.meshgrid(torch.arange(proj.shape[1]), torch.arange(proj.shape[2]), indexing="ij")
            self.threshold.copy_(proj[rows, t, d])

        def forward(self, f):
            g = torch.sigmoid((self.project(f) - self.threshold) * self.log_sharpness.exp())[:, :, None, :]
            leaf_p = (torch.log(g + 1e-9) * self.codes + torch.log(1 - g + 1e-9) * (1 - self.codes)).sum(-1).exp()
            return torch.einsum("ntl,tlk->nk", leaf_p, self.leaf) / math.sqrt(self.leaf.shape[0])

    def ple_net(f_train):
        enc = PiecewiseLinearEncoding(f_train.shape[1], 8)
        enc.fit_edges(f_train)
        return nn.Sequential(enc, MLP(enc.n_out, [64, 64], 2))

    def train(nets, f, y, offset=None, steps=300):
        params = [p for net in nets for p in net.parameters()]
        opt = torch.optim.Adam(params, lr=0.01, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            loss = 0.0
            for net, cols in nets.items():
                logits = net(f * cols)
                if offset is not None:
                    logits = logits + torch.stack([torch.zeros_like(offset), offset], -1)
                loss = loss + nn.functional.cross_entropy(logits, y)
            loss.backward()
            opt.step()

    def p_single(nets, f, offset=None):
        with torch.no_grad():
            probs = []
            for net, cols in nets.items():
                logits = net(f * cols)
                d = logits[:, 1] - logits[:, 0] + (offset if offset is not None else 0.0)
                probs.append(torch.sigmoid(d))
            return torch.stack(probs).mean(0).numpy()

    return torch, SoftObliviousTrees, ple_net, train, p_single


def run_split(df, fraction: float, seed: int, steps: int = 300) -> list[dict]:
    """Val ROC AUC of every probe on one split (labelled rows to fit, val rows to score)."""
    from scipy import sparse
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomTreesEmbedding
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsClassifier

    from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
    from pyro_hea.data.splits import DescriptorScaler, paper_split
    from pyro_hea.model.networks import RandomPartitionEncoding

    torch, SoftObliviousTrees, ple_net, train, p_single = _torch_probes()
    split = paper_split(df, seed=seed, label_fraction=fraction)
    X = df[list(DESCRIPTOR_NAMES)].to_numpy(float)
    y = df["single_phase"].fillna(-1).to_numpy(int)
    train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
    Xs = DescriptorScaler.fit(X[train_rows]).transform(X)
    lab, val = (split == "labelled").to_numpy() & (y >= 0), (split == "val").to_numpy() & (y >= 0)
    Xl, yl, Xv = Xs[lab], y[lab], Xs[val]
    p = {}
    forest = RandomForestClassifier(500, oob_score=True, random_state=seed, n_jobs=1).fit(Xl, yl)
    p["random-forest"] = forest.predict_proba(Xv)[:, 1]
    p["random-forest/all-features"] = RandomForestClassifier(500, max_features=None, random_state=seed,
                                                             n_jobs=1).fit(Xl, yl).predict_proba(Xv)[:, 1]
    p["extra-trees"] = ExtraTreesClassifier(500, random_state=seed, n_jobs=1).fit(Xl, yl).predict_proba(Xv)[:, 1]
    p["knn-10"] = KNeighborsClassifier(10, weights="distance").fit(Xl, yl).predict_proba(Xv)[:, 1]
    emb = RandomTreesEmbedding(300, max_depth=5, random_state=seed, n_jobs=1).fit(Xs[train_rows])
    p["random-trees-embedding+lr"] = LogisticRegression(max_iter=3000).fit(emb.transform(Xl), yl).predict_proba(
        emb.transform(Xv))[:, 1]

    f_all, f_lab, f_val = (torch.tensor(a, dtype=torch.float) for a in (Xs[train_rows], Xl, Xv))
    torch.manual_seed(seed)
    part = RandomPartitionEncoding(Xs.shape[1], 1000, 5)
    part.fit_thresholds(f_all)

    def leaves(f):
        ids = part(f).numpy()
        return sparse.csr_matrix((np.ones(ids.size), (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel())),
                                 shape=(len(ids), part.n_leaves))

    p["random-partition+lr"] = LogisticRegression(max_iter=3000).fit(leaves(f_lab), yl).predict_proba(leaves(f_val))[:, 1]
    t_lab, ones = torch.tensor(yl), torch.ones(Xs.shape[1])
    torch.manual_seed(seed)
    nets = {ple_net(f_all): ones}
    train(nets, f_lab, t_lab, steps=steps)
    p["ple-mlp"] = p_single(nets, f_val)
    p["ple-mlp+forest-average"] = (p["ple-mlp"] + p["random-forest"]) / 2
    gen = torch.Generator().manual_seed(seed)
    nets = {ple_net(f_all): torch.zeros(Xs.shape[1]).index_fill_(0, torch.randperm(Xs.shape[1], generator=gen)[:3], 1.0)
            for _ in range(20)}
    train(nets, f_lab, t_lab, steps=steps)
    p["ple-mlp/subspace-20x3"] = p_single(nets, f_val)
    trees = SoftObliviousTrees(Xs.shape[1], 64, 4)
    trees.init_thresholds(f_all, gen)
    train({trees: ones}, f_lab, t_lab, steps=steps)
    p["soft-trees-64x4"] = p_single({trees: ones}, f_val)

    def clipped_logit(q):
        q = np.clip(np.nan_to_num(q, nan=0.5), 0.02, 0.98)
        return torch.tensor(np.log(q / (1 - q)), dtype=torch.float)

    torch.manual_seed(seed)
    nets = {ple_net(f_all): ones}
    train(nets, f_lab, t_lab, offset=clipped_logit(forest.oob_decision_function_[:, 1]), steps=steps)
    p["ple-mlp/forest-residual"] = p_single(nets, f_val, offset=clipped_logit(p["random-forest"]))
    return [{"label_fraction": fraction, "seed": seed, "method": m, "n_labelled": int(lab.sum()),
             "val_auc": float(roc_auc_score(y[val], p[m]))} for m in PROBES]


def write_report(rows: pd.DataFrame, out_dir: Path, command: str, minutes: float) -> Path:
    """docs/results/classifier_probe.{csv,md}: mean ± sd of val AUC by probe and fraction."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out_dir / "classifier_probe.csv", index=False)
    stats = rows.groupby(["method", "label_fraction"])["val_auc"].agg(["mean", "std"]).reset_index()
    fractions = sorted(rows["label_fraction"].unique())
    lines = ["# Supervised probes of the forest's advantage (validation only)", "", f"`{command}`", "",
             "Validation ROC AUC, mean ± sd over split seeds "
             f"{', '.join(map(str, sorted(rows['seed'].unique())))}; every probe is fit on the labelled rows only "
             "(the random-trees embedding also sees the unlabelled rows' descriptors). Test was not read.", "",
             "| probe | " + " | ".join(f"{f:g}" for f in fractions) + " |", "|---|" + "---:|" * len(fractions)]
    for m in PROBES:
        cells = []
        for f in fractions:
            s = stats[(stats["method"] == m) & (stats["label_fraction"] == f)]
            cells.append(f"{s['mean'].iloc[0]:.3f} ± {s['std'].iloc[0]:.3f}" if len(s) else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"- Wall time: {minutes:.1f} min.", ""]
    path = out_dir / "classifier_probe.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import torch

    from pyro_hea import load_dataset

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    df, start, rows = load_dataset("pei2020"), time.time(), []
    for i, (fraction, seed) in enumerate(itertools.product(args.fractions, args.seeds), 1):
        rows += run_split(df, fraction, seed)
        print(f"[{i}/{len(args.fractions) * len(args.seeds)}] fraction {fraction:g}, seed {seed}", flush=True)
    command = "python benchmarks/classifier_probe.py" + ("" if argv is None and len(sys.argv) == 1
                                                           else " " + " ".join(sys.argv[1:] if argv is None else argv))
    path = write_report(pd.DataFrame(rows), args.out_dir, command, (time.time() - start) / 60)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
