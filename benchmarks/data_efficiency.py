"""Data-efficiency study: pyro-hea against supervised baselines as labels get scarce.

Grid: label fractions (of the labelled training split) x split seeds. Every
method sees the same split and the same label subset for a given (fraction,
seed): ``paper_split(df, seed=seed, label_fraction=fraction)``.

Methods
-------
- ``pyro-hea``: the package default (``PhaseModel.fit`` with no model
  options, StandardNormal z prior, UniformPhase y prior), on the labelled
  rows with labels and every other training row without;
- ``pyro-hea/labels-only``: the same model with the unlabelled rows dropped;
- ``pyro-hea/classifier-only``: the default's classifier network q(y|x)
  alone, trained on its term of the loss (the label-weighted cross-entropy
  with the same weight decay, optimizer, steps and selection), no ELBO;
- ``pyro-hea/expert-z``: DescriptorAligned z prior (z axes 0 and 1 centred
  on the standardized VEC and size mismatch delta, scale 1 like the
  standard prior), UniformPhase y;
- ``pyro-hea/expert-y``: StandardNormal z, EmpiricalRulesPhase y prior
  (Yang-Zhang Omega/delta rules, softened);
- the expert rows run at the fractions of ``METHOD_FRACTIONS`` (5% and 10%);
- ``logistic-regression``, ``mlp``, ``hist-gradient-boosting``, ``random-forest``: scikit-learn
  classifiers on the standardized descriptors, fit on the labelled rows only
  and tuned over a small grid by validation ROC AUC (ties: log-loss).

pyro-hea uses its labelled rows with labels and every other training row
(the unlabelled pool plus the labelled rows whose labels were dropped)
without; it selects its weights on the validation loss. The test split is
scored once per configuration. Metrics: test ROC AUC and accuracy, and
``test_auc_multi``, the ROC AUC on the test alloys with 4 or more elements.

Each finished configuration is cached as a small JSON file (by default in
``benchmarks/.cache/data_efficiency/``), keyed by the method, fraction,
seed and the method's settings, so an interrupted run resumes and a rerun
only aggregates. The configurations run on pyro-hea's sweep engine
(:func:`pyro_hea.infer.sweep.run_sweep`): in this process with ``--jobs 1``,
as Dask tasks on a LocalCluster of ``--jobs`` worker processes, or on an
existing Dask cluster with ``--scheduler tcp://HOST:PORT`` (or
``DASK_SCHEDULER_ADDRESS``; this file is sent to its workers, which need
pyro-hea installed). Every configuration seeds itself, so where it runs does
not change its result. Outputs: ``data_efficiency.csv``, ``data_efficiency.md``
(mean ± sd table) and ``data_efficiency.png`` in ``--out-dir``.

Usage::

    python benchmarks/data_efficiency.py --jobs 2 --steps 1500
    python benchmarks/data_efficiency.py --settings /tmp/pyrohea_settings.json --jobs 2
    python benchmarks/data_efficiency.py --scheduler tcp://10.0.0.5:8786  # on an existing Dask cluster
    python benchmarks/data_efficiency.py --fractions 0.05 --seeds 0 --steps 20 --out-dir /tmp/de  # tiny
    python benchmarks/data_efficiency.py --diagnose --fractions 0.05 --steps 500 --jobs 2  # gradients at 5%
    python benchmarks/data_efficiency.py --merge A.csv B.csv --out-dir docs/results/merged  # no fitting

``--merge`` builds the CSV, page and plot from committed CSVs of earlier
runs instead of fitting (``--methods``, ``--fractions`` and ``--seeds``
filter the rows). A (method, fraction, seed) row found in several files is
taken from the first file that has it; the run prints how many later copies
were dropped and how many of those disagree on test AUC.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # use this checkout's pyro_hea, whatever is installed
    sys.path.insert(0, str(REPO))
DEFAULT_CACHE = REPO / "benchmarks" / ".cache" / "data_efficiency"
DEFAULT_OUT = REPO / "docs" / "results"
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
SEEDS = (0, 1, 2, 3, 4)

#: pyro-hea variants: (z prior name, y prior name, PhaseModel.fit overrides, what is trained)
#: with the prior names of pyro_hea.model.priors; "semi" trains the model on labelled and
#: unlabelled rows, "labels-only" drops the unlabelled rows, "classifier-only" trains q(y|x) alone.
PYRO_METHODS = {
    "pyro-hea": ("standard-normal", "uniform", {}, "semi"),
    "pyro-hea/labels-only": ("standard-normal", "uniform", {}, "labels-only"),
    "pyro-hea/classifier-only": ("standard-normal", "uniform", {}, "classifier-only"),
    "pyro-hea/expert-z": ("descriptor-aligned", "uniform", {}, "semi"),
    "pyro-hea/expert-y": ("standard-normal", "empirical-rules", {}, "semi"),
    "pyro-hea/candidates": ("standard-normal", "uniform", {}, "candidates"),
    "pyro-hea/hidden+candidates": ("standard-normal", "uniform", {}, "semi+candidates"),
    # Added after a look at the test rows of the two above (never a default): 3,000 of the
    # candidates, so that the fit stays full batch and only the pool differs from labels-only.
    "pyro-hea/candidates-3k": ("standard-normal", "uniform", {}, "candidates-3k"),
    # Issue 10, session 17, chosen on validation before its test rows were read (not the default):
    # the phase only in the descriptor view, one full-covariance Gaussian per class (QDA), and no
    # class position in training (with estimate_class_position=True the positions are set after
    # training for design; that does not change q(y|x), so these rows stand for it too).
    "pyro-hea/gaussian-descriptors": ("standard-normal", "uniform",
                                      {"descriptor_model": "gaussian", "class_position": False}, "semi"),
    # Issue 10, session 23, chosen on validation before its test rows were read (not yet the
    # default): q(y|x) adds a linear term on the leaves of 1,000 random oblivious trees whose
    # splits sit at quantiles of all training rows, labelled and unlabelled.
    # (pinned without the forest partition that session 28 added, so that they reproduce)
    "pyro-hea/random-partition": ("standard-normal", "uniform",
                                  {"classifier_trees": 1000, "classifier_forest_trees": 0}, "semi"),
    "pyro-hea/random-partition/labels-only": ("standard-normal", "uniform",
                                              {"classifier_trees": 1000, "classifier_forest_trees": 0}, "labels-only"),
}
#: Methods run at some label fractions only (the expert priors and the candidate pools: where labels are few).
METHOD_FRACTIONS = {"pyro-hea/expert-z": (0.05, 0.1), "pyro-hea/expert-y": (0.05, 0.1),
                    "pyro-hea/candidates": (0.05, 0.1), "pyro-hea/hidden+candidates": (0.05, 0.1),
                    "pyro-hea/candidates-3k": (0.05, 0.1)}
#: The real unlabelled candidates of the "candidates" rows: every equimolar alloy of this many
#: elements from the default palette (4,845 + 15,504 + 38,760 for 20 elements; 9,373 for 15),
#: less those that are dataset alloys.
CANDIDATE_K = (4, 5, 6)

#: Supervised baselines: grids searched on the validation split.
BASELINE_GRIDS = {
    "logistic-regression": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "mlp": {"hidden_layer_sizes": [(32,), (100, 100)], "alpha": [1e-4, 1e-2, 1.0]},
    "hist-gradient-boosting": {"learning_rate": [0.05, 0.2], "max_leaf_nodes": [7, 31],
                               "min_samples_leaf": [2, 5, 20]},
    # added in session 22: a forest of 500 trees, the usual small-data tabular learner
    "random-forest": {"min_samples_leaf": [1, 3, 5], "max_features": ["sqrt", 1.0]},
}
METHODS = tuple(PYRO_METHODS) + tuple(BASELINE_GRIDS)
#: Test calibration metrics of each configuration (recorded in its details, columns of the table).
CALIBRATION_COLUMNS = ("test_log_loss", "test_brier", "test_ece", "test_log_loss_platt")
#: The calibration metrics of the probabilities as fitted (the rest are recomputed when the table is built).
FITTED_CALIBRATION = ("test_log_loss", "test_brier", "test_ece")
ANALYSIS_MARKER = "<!-- analysis: text below this line is kept when the table is regenerated -->"


# ----------------------------------------------------------------------- helpers
def _atomic_json(path: Path, data: dict) -> None:
    """Write a cached result atomically, in the cache's format (indented, NaN kept as NaN)."""
    from pyro_hea.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, default=float)))


def _load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _importable(function):
    """``function`` as worker processes import it: from its script's module name, not ``__main__``
    (a script run from this folder is also importable under its name: the folder is on sys.path)."""
    if function.__module__ != "__main__":
        return function
    import importlib

    name = Path(sys.modules["__main__"].__file__).stem
    return getattr(importlib.import_module(name), function.__name__)


def _sweep(function, configs, cache_dir, key, jobs: int, scheduler, client, progress: bool, **kwargs):
    """``function(**config)`` for each configuration, on pyro_hea's sweep engine (Dask when jobs > 1 or
    a scheduler is given). This file and the one defining ``function`` are sent to the workers of a
    cluster, which import them by name."""
    from pyro_hea.infer.sweep import run_sweep

    function = _importable(function)
    # the defining file from the function itself: a script loaded from its path (as a tutorial does) is
    # not in sys.modules under its name
    files = dict.fromkeys([__file__, inspect.getsourcefile(function) or __file__])
    return run_sweep(function, configs, cache_dir, key, workers=jobs, scheduler=scheduler, client=client,
                     progress=progress, load=_load_json, save=_atomic_json, upload=list(files), **kwargs)


def settings_hash(method: str, pyro_settings: dict) -> str:
    """Short hash of everything that changes a method's result besides fraction and seed.

    Examples
    --------
    >>> settings_hash("mlp", {"steps": 10}) == settings_hash("mlp", {"steps": 20})
    True
    """
    from pyro_hea.infer.phase_model import default_settings

    if method in PYRO_METHODS:
        # the package's defaults too: a cache written before a default changed is not reused
        key = {"priors": PYRO_METHODS[method], "settings": pyro_settings, "defaults": default_settings()}
    else:
        key = {"grid": {k: [list(v) if isinstance(v, tuple) else v for v in vals]
                        for k, vals in BASELINE_GRIDS[method].items()}}
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_path(cache_dir: Path, method: str, fraction: float, seed: int, pyro_settings: dict) -> Path:
    """Where a configuration's result is cached."""
    tag = method.replace("/", "__")
    return Path(cache_dir) / tag / f"f{fraction:g}_s{seed}_{settings_hash(method, pyro_settings)}.json"


@functools.lru_cache(maxsize=1)
def _dataset():
    from pyro_hea import load_dataset

    return load_dataset("pei2020")


def _metrics(y: np.ndarray, probs: np.ndarray) -> dict:
    from pyro_hea.infer.metrics import classification_metrics, mean_log_loss

    m = classification_metrics(y, probs)
    return {"auc": m["auc"], "accuracy": m["accuracy"], "brier": m["brier"], "ece": m["ece"],
            "log_loss": mean_log_loss(y, probs)}


def multicomponent_rows(df) -> np.ndarray:
    """Alloys with 4 or more elements (the multicomponent regime the random split barely samples)."""
    return (df["composition"].map(len) >= 4).to_numpy()


def platt_scale(y_val: np.ndarray, p_val: np.ndarray, p_test: np.ndarray) -> np.ndarray:
    """``p_test`` recalibrated by Platt scaling: a logistic regression on the logit of p(single) fitted on val.

    As in Platt (1999), the targets are smoothed to (N+ + 1) / (N+ + 2) and
    1 / (N- + 2), so that a validation set the predictor separates perfectly
    does not send the slope to infinity (each row enters twice, once per
    class, weighted by its target).

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    >>> platt_scale(np.array([0, 1, 0, 1]), p, p).shape
    (4, 2)
    """
    from sklearn.linear_model import LogisticRegression

    def logit(p):
        p1 = np.clip(p[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p1 / (1 - p1))[:, None]

    y_val = np.asarray(y_val)
    if len(set(y_val)) < 2:
        return p_test
    n_pos, n_neg = int((y_val == 1).sum()), int((y_val == 0).sum())
    target = np.where(y_val == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    features = np.concatenate([logit(p_val)] * 2)
    labels = np.concatenate([np.ones(len(y_val), int), np.zeros(len(y_val), int)])
    fit = LogisticRegression(C=1e4, max_iter=1000).fit(features, labels, sample_weight=np.concatenate([target, 1 - target]))
    return fit.predict_proba(logit(p_test))


def scored_rows(df, split, part: str) -> np.ndarray:
    """The alloys of ``part`` ("val" or "test") with a known label: the rows every score reads."""
    return (split == part).to_numpy() & df["single_phase"].notna().to_numpy()


@functools.lru_cache(maxsize=None)
def _split_labels(seed: int, fraction: float) -> dict[str, np.ndarray]:
    """The val and test labels of the split a configuration was scored on."""
    from pyro_hea import paper_split

    df = _dataset()
    split = paper_split(df, seed=seed, label_fraction=fraction)
    return {part: df["single_phase"][scored_rows(df, split, part)].to_numpy(int) for part in ("val", "test")}


def _scores(out: dict, df, split, predict) -> dict:
    """val / test AUC and accuracy, and test AUC on the >= 4-element test alloys, into ``out``."""
    from sklearn.metrics import roc_auc_score

    y = df["single_phase"]
    probs = {}
    for part in ("val", "test"):
        rows = scored_rows(df, split, part)
        probs[part] = (y[rows].to_numpy(int), predict(df[rows]))
        m = _metrics(*probs[part])
        out[f"{part}_auc"], out[f"{part}_accuracy"] = m["auc"], m["accuracy"]
        if part == "test":  # calibration of the predicted probabilities
            out.update({k: m[k.removeprefix("test_")] for k in FITTED_CALIBRATION})
    for part in ("val", "test"):  # p(single-phase) of each labelled val / test alloy, in table order
        out[f"{part}_p_single"] = [round(float(p), 6) for p in probs[part][1][:, 1]]
    # the >= 4-element test alloys, among the test predictions already made
    multi = multicomponent_rows(df)[scored_rows(df, split, "test")]
    labels, p_test = probs["test"][0][multi], probs["test"][1][multi]
    out["test_auc_multi"] = float(roc_auc_score(labels, p_test[:, 1])) if len(set(labels)) == 2 else float("nan")
    out["n_test_multi"] = int(multi.sum())
    return out


def fit_classifier_only(df, split, seed: int, settings: dict):
    """The default model's classifier q(y|x) trained alone on its term of the loss, no ELBO.

    Same network, initialization, label weight w = alpha * N_train / N_labelled,
    weight decay, optimizer (ClippedAdam with the same learning-rate decay),
    steps and selection (best validation log-loss, every ``eval_every``
    steps) as inside the semi-supervised model.
    """
    import copy

    import torch
    from pyro.optim.clipped_adam import ClippedAdam

    from pyro_hea import PhaseModel
    from pyro_hea.infer.training import TrainConfig
    from pyro_hea.model.vae import ModelConfig

    mc, tc = ModelConfig(), TrainConfig()
    for key, value in {**settings, "seed": seed}.items():
        setattr(mc if hasattr(mc, key) else tc, key, value)
    torch.manual_seed(tc.seed)
    model = PhaseModel.build(df, split, mc, tc)
    t = model.tensors(df)
    train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
    lab = t[np.flatnonzero((split == "labelled").to_numpy() & (t.y.numpy() >= 0))]
    val = t[np.flatnonzero((split == "val").to_numpy() & (t.y.numpy() >= 0))]
    w = model.vae.set_label_weight(int(train_rows.sum()), len(lab))
    clf = model.vae.classifier
    opt = ClippedAdam(clf.parameters(), lr=tc.lr, clip_norm=tc.clip_norm, lrd=tc.final_lr_fraction ** (1.0 / tc.steps),
                      weight_decay=tc.classifier_weight_decay)
    best, best_loss, best_step = copy.deepcopy(clf.state_dict()), float("inf"), 0
    for step in range(1, tc.steps + 1):
        opt.zero_grad()
        logits = clf.member_logits(lab.x, lab.features)  # (members, n, K): each member on its own loss
        loss = w * sum(torch.nn.functional.cross_entropy(m, lab.y, reduction="sum") for m in logits) / len(logits)
        loss.backward()
        opt.step()
        if step % tc.eval_every == 0 or step == tc.steps:
            with torch.no_grad():
                val_loss = float(torch.nn.functional.cross_entropy(clf(val.x, val.features), val.y))
            if val_loss < best_loss:
                best, best_loss, best_step = copy.deepcopy(clf.state_dict()), val_loss, step
    clf.load_state_dict(best)
    model.trainer.state.best_step, model.trainer.state.step = best_step, tc.steps
    return model


# ----------------------------------------------------------------------- methods
def fit_pyro(method: str, df, split, seed: int, pyro_settings: dict) -> dict:
    """Fit a pyro-hea variant; return val and test AUC / accuracy and fit details.

    At full labels the default also reports the test reconstruction (posterior
    mode of z, and the amortized encoder mean: ``*_amortized``).
    """
    from pyro_hea import PhaseModel
    from pyro_hea.model.priors import make_prior

    prior_z, prior_y, extra, mode = PYRO_METHODS[method]
    settings = {**pyro_settings, **extra}
    settings.setdefault("seed", seed)
    pool = None
    if mode in ("candidates", "semi+candidates", "candidates-3k"):
        pool = equimolar_candidates(df, split, 3000 if mode == "candidates-3k" else None, seed)
    if mode == "classifier-only":
        model = fit_classifier_only(df, split, seed, settings)
    else:
        train_split = split.where(split != "unlabelled", "unused") if mode in ("labels-only", "candidates", "candidates-3k") else split
        model = PhaseModel.fit(df, train_split, prior_z=make_prior("z", prior_z), prior_y=make_prior("y", prior_y),
                               progress=False, candidates=pool, **settings)
    out = {"best_step": int(model.trainer.state.best_step), "steps_run": int(model.trainer.state.step),
           "n_candidates": len(pool) if pool is not None else 0,
           "alpha": float(model.vae.config.alpha), "label_weight": float(model.vae.label_weight),
           "latent_dim": int(model.vae.config.latent_dim)}
    _scores(out, df, split, model.predict_proba)
    if method == "pyro-hea" and (split == "unlabelled").sum() < (split == "labelled").sum():
        test = (split == "test").to_numpy() & df["single_phase"].notna().to_numpy()
        m = model.evaluate(df, test)
        out.update({k: float(v) for k, v in m.items() if k.startswith("recon_")})
    return out


def equimolar_candidates(df, split, size: int | None = None, seed: int = 0):
    """The pool of real unlabelled candidates: equimolar CANDIDATE_K-element alloys of the default palette.

    With ``size``, a random subset of that many (seeded), drawn before the dataset alloys are left out.
    """
    from pyro_hea.data.candidates import CandidatePool, split_exclusions
    from pyro_hea.data.datasets import element_vocabulary
    from pyro_hea.design.space import DEFAULT_PALETTE, equimolar_space, formulas

    names = [f for k in CANDIDATE_K for f in formulas(*equimolar_space(DEFAULT_PALETTE, k))]
    if size is not None:
        names = [names[i] for i in np.sort(np.random.default_rng(seed).choice(len(names), size, replace=False))]
    return CandidatePool.from_compositions(names, element_vocabulary(df), exclude=split_exclusions(df, split),
                                           source=f"equimolar {'/'.join(map(str, CANDIDATE_K))}-element alloys")


def _baseline_estimator(method: str, params: dict, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if method == "logistic-regression":
        return LogisticRegression(max_iter=5000, **params)
    if method == "mlp":
        return MLPClassifier(solver="lbfgs", max_iter=2000, random_state=seed, **params)
    if method == "hist-gradient-boosting":
        return HistGradientBoostingClassifier(max_iter=200, random_state=seed, **params)
    if method == "random-forest":
        return RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=1, **params)
    raise ValueError(f"unknown baseline {method!r}")


def fit_baseline(method: str, df, split, seed: int) -> dict:
    """Fit a supervised baseline on the labelled rows, tune on val, score val and test.

    The grid point with the best validation ROC AUC wins (ties: lower
    validation log-loss), the metric the study compares on.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss, roc_auc_score

    from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
    from pyro_hea.data.splits import DescriptorScaler

    X = df[list(DESCRIPTOR_NAMES)].to_numpy(float)
    y = df["single_phase"].fillna(-1).to_numpy(int)
    # the same scaler as pyro-hea: fit on the training rows' descriptors (no labels needed)
    Xs = DescriptorScaler.fit(X[split.isin(["labelled", "unlabelled"]).to_numpy()]).transform(X)
    rows = {k: (split == k).to_numpy() & (y >= 0) for k in ("labelled", "val", "test")}
    grid = BASELINE_GRIDS[method]
    best, best_key, best_params = None, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            est = _baseline_estimator(method, params, seed).fit(Xs[rows["labelled"]], y[rows["labelled"]])
            p_val = est.predict_proba(Xs[rows["val"]])
            key = (-roc_auc_score(y[rows["val"]], p_val[:, 1]), log_loss(y[rows["val"]], p_val, labels=[0, 1]))
            if best_key is None or key < best_key:
                best, best_key, best_params = est, key, params
    out = {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in best_params.items()},
           "val_log_loss": float(best_key[1])}
    position = pd.Series(np.arange(len(df)), index=df.index)
    _scores(out, df, split, lambda sub: best.predict_proba(Xs[position[sub.index].to_numpy()]))
    return out


def run_config(method: str, fraction: float, seed: int, pyro_settings: dict, cache_dir: str | None = None) -> dict:
    """Run one configuration (in a worker process) and return its result (cached in ``cache_dir`` if given;
    :func:`run_study` caches it on the client instead, as it arrives)."""
    import torch
    from threadpoolctl import threadpool_limits

    from pyro_hea import paper_split

    torch.set_num_threads(1)  # one thread per worker: --jobs sets the parallelism
    df = _dataset()
    split = paper_split(df, seed=seed, label_fraction=fraction)
    started = time.perf_counter()
    with threadpool_limits(limits=1):  # BLAS threads oversubscribe a shared CPU badly
        if method in PYRO_METHODS:
            result = fit_pyro(method, df, split, seed, pyro_settings)
        else:
            result = fit_baseline(method, df, split, seed)
    record = {
        "method": method, "label_fraction": float(fraction), "seed": int(seed),
        "test_auc": result.pop("test_auc"), "test_accuracy": result.pop("test_accuracy"),
        "test_auc_multi": result.pop("test_auc_multi"),
        "val_auc": result.pop("val_auc"), "val_accuracy": result.pop("val_accuracy"),
        "n_labelled": int((split == "labelled").sum()), "n_unlabelled": int((split == "unlabelled").sum()),
        "fit_seconds": time.perf_counter() - started,
        "settings": dict(pyro_settings) if method in PYRO_METHODS else {},
        "details": result,
    }
    if cache_dir is not None:
        _atomic_json(cache_path(Path(cache_dir), method, fraction, seed, pyro_settings), record)
    return record


def recalibrated_log_loss(record: dict) -> float:
    """Test log-loss after :func:`platt_scale` on the validation labels, from a record's cached probabilities.

    Computed when the table is built, so the cache holds only what the fit predicted and a change of
    the recalibration needs no refit; NaN for a record cached without its probabilities.
    """
    from pyro_hea.infer.metrics import mean_log_loss

    details = record.get("details", {})
    if "val_p_single" not in details or "test_p_single" not in details:
        return float("nan")
    labels = _split_labels(int(record["seed"]), float(record["label_fraction"]))
    probs = {part: np.asarray(details[f"{part}_p_single"], dtype=float) for part in ("val", "test")}
    if any(len(labels[part]) != len(probs[part]) for part in probs):
        raise ValueError(f"cached probabilities of {record['method']} (fraction {record['label_fraction']}, seed "
                         f"{record['seed']}) do not match the split's labelled alloys")
    two = {part: np.stack([1 - p, p], axis=1) for part, p in probs.items()}
    return mean_log_loss(labels["test"], platt_scale(labels["val"], two["val"], two["test"]))


def _with_calibration(record: dict) -> dict:
    """The record with the test calibration metrics as columns (they travel in ``details``)."""
    details = dict(record.get("details", {}))
    lifted = {k: details.pop(k) for k in FITTED_CALIBRATION if k in details}
    details.pop("test_log_loss_platt", None)  # (a value cached by an earlier version is never used)
    lifted["test_log_loss_platt"] = recalibrated_log_loss(record)
    return {**record, **lifted, "details": details}


# ------------------------------------------------------------------------- study
def run_study(methods, fractions, seeds, pyro_settings: dict, cache_dir: Path, jobs: int = 1,
              progress: bool = True, scheduler: str | None = None, client=None) -> tuple[pd.DataFrame, dict]:
    """Run (or load from the cache) every configuration; return the results table and counts.

    The configurations run on :func:`pyro_hea.infer.sweep.run_sweep`: in this
    process (``jobs=1``), on ``jobs`` local worker processes, or on the Dask
    cluster at ``scheduler`` (or ``client``). Each result is cached as it arrives.

    Examples
    --------
    >>> table, counts = run_study(["logistic-regression"], [0.05], [0], {"steps": 10},
    ...                           Path("/tmp/de-cache"), progress=False)  # doctest: +SKIP
    """
    configs = [(m, f, s) for m in methods for f in fractions for s in seeds
               if m not in METHOD_FRACTIONS or any(np.isclose(f, g) for g in METHOD_FRACTIONS[m])]
    # longest first (pyro-hea fits), so parallel workers finish together
    configs.sort(key=lambda c: (c[0] not in PYRO_METHODS, c[1], c[2]))
    tasks = [{"method": m, "fraction": f, "seed": s, "pyro_settings": pyro_settings} for m, f, s in configs]

    def key(task: dict) -> Path:  # relative to cache_dir: the layout of the cache as before
        return cache_path(Path(), task["method"], task["fraction"], task["seed"], pyro_settings)

    def postfix(task: dict, record: dict) -> str:
        return (f"{record['method']} f={record['label_fraction']:g} s={record['seed']} "
                f"AUC={record['test_auc']:.3f}")

    done = _sweep(run_config, tasks, cache_dir, key, jobs, scheduler, client, progress, postfix=postfix)
    table = pd.DataFrame.from_records([_with_calibration(r) for r in done.results])
    table = in_method_order(table, methods)
    return table, {"configurations": len(configs), "cached": done.cached, "computed": done.computed}


def in_method_order(table: pd.DataFrame, methods) -> pd.DataFrame:
    """The table sorted by method (in the order of ``methods``), label fraction and seed."""
    order = {m: i for i, m in enumerate(methods)}
    table = table.sort_values(["method", "label_fraction", "seed"], key=lambda c: c.map(order) if c.name == "method" else c)
    return table.reset_index(drop=True)


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The committed CSV: one row per method, fraction and seed."""
    # results cached before the calibration columns existed read as NaN there
    out = table.reindex(columns=["method", "label_fraction", "seed", "test_auc", "test_auc_multi", "test_accuracy",
                                 "val_auc", "val_accuracy", *CALIBRATION_COLUMNS,
                                 "n_labelled", "n_unlabelled", "fit_seconds"]).copy()
    out["settings"] = [json.dumps(s, sort_keys=True) if s else "" for s in table["settings"]]
    # the per-alloy probabilities stay in the cache, not in the CSV
    out["details"] = [json.dumps({k: v for k, v in d.items() if not k.endswith("_p_single")}, sort_keys=True)
                      for d in table["details"]]
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of test AUC, accuracy and calibration per method and fraction."""
    table = table.reindex(columns=list(dict.fromkeys([*table.columns, *CALIBRATION_COLUMNS])))
    g = table.groupby(["method", "label_fraction"], sort=False)
    s = g.agg(auc_mean=("test_auc", "mean"), auc_sd=("test_auc", "std"),
              multi_mean=("test_auc_multi", "mean"), multi_sd=("test_auc_multi", "std"),
              val_mean=("val_auc", "mean"), val_sd=("val_auc", "std"), acc_mean=("test_accuracy", "mean"),
              acc_sd=("test_accuracy", "std"), n_seeds=("seed", "nunique"),
              ll_mean=("test_log_loss", "mean"), ll_sd=("test_log_loss", "std"),
              ece_mean=("test_ece", "mean"), ece_sd=("test_ece", "std"),
              platt_mean=("test_log_loss_platt", "mean"), platt_sd=("test_log_loss_platt", "std"),
              n_labelled=("n_labelled", "mean")).reset_index()
    return s


def paired_differences(table: pd.DataFrame, reference: str = "pyro-hea", metric: str = "test_auc") -> pd.DataFrame:
    """``metric`` of ``reference`` minus each comparison's, paired by split seed, per label fraction.

    The comparisons are ``pyro-hea/labels-only`` and the supervised baseline
    with the best mean test AUC at that fraction (the must-targets). Columns:
    the mean difference, its 95 % t interval over seeds, and the seeds where
    the reference is at least as good (higher AUC; for a loss, ``test_log_loss``
    or ``test_ece``, lower).

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["pyro-hea"] * 3 + ["mlp"] * 3, "label_fraction": 0.1,
    ...                   "seed": [0, 1, 2] * 2, "test_auc": [0.9, 0.9, 0.7, 0.8, 0.8, 0.8]})
    >>> paired_differences(t).round(3)[["against", "mean", "at_least_as_good"]].values.tolist()
    [['mlp', 0.033, '2 of 3']]
    """
    from scipy import stats

    rows, sign = [], (-1 if metric in CALIBRATION_COLUMNS else 1)
    for fraction, part in table.groupby("label_fraction"):
        auc = part.pivot_table(index="seed", columns="method", values="test_auc")
        wide = part.pivot_table(index="seed", columns="method", values=metric)
        if reference not in wide:
            continue
        baselines = [m for m in BASELINE_GRIDS if m in wide]
        against = [m for m in ("pyro-hea/labels-only",) if m in wide]
        if baselines:
            against.append(max(baselines, key=lambda m: auc[m].mean()))
        for other in against:
            d = (wide[reference] - wide[other]).dropna()
            half = (float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
                    if len(d) > 1 else float("nan"))
            rows.append({"label_fraction": fraction, "against": other, "mean": float(d.mean()),
                         "low": float(d.mean()) - half, "high": float(d.mean()) + half,
                         "at_least_as_good": f"{int((sign * d >= 0).sum())} of {len(d)}"})
    return pd.DataFrame(rows)


def _paired_markdown(table: pd.DataFrame, metric: str = "test_auc") -> str:
    d = paired_differences(table, metric=metric)
    if d.empty:
        return "(no pyro-hea rows)"
    lines = ["| labels | against | mean difference | 95 % interval | seeds where pyro-hea is as good or better |",
             "|---|---|---:|---|---|"]
    for r in d.itertuples():
        lines.append(f"| {r.label_fraction:g} | {r.against} | {r.mean:+.4f} | [{r.low:+.4f}, {r.high:+.4f}] "
                     f"| {r.at_least_as_good} |")
    return "\n".join(lines)


def markdown(table: pd.DataFrame, meta: dict, keep: str = "") -> str:
    """The results page: AUC and accuracy tables (mean ± sd), settings, command and wall time."""
    s = summary(table)
    fractions = sorted(s["label_fraction"].unique())
    methods = list(dict.fromkeys(table["method"]))
    n_lab = s.groupby("label_fraction")["n_labelled"].mean()

    def grid(mean, sd, lower=False):
        head = "| method | " + " | ".join(f"{f:g} ({n_lab[f]:.0f})" for f in fractions) + " |"
        lines = [head, "|---|" + "---:|" * len(fractions)]
        best = {f: (s[s.label_fraction == f][mean].min() if lower else s[s.label_fraction == f][mean].max())
                for f in fractions}
        for m in methods:
            cells = []
            for f in fractions:
                row = s[(s.method == m) & (s.label_fraction == f)]
                if row.empty:
                    cells.append("")
                    continue
                r = row.iloc[0]
                sd_text = f" ± {r[sd]:.3f}" if r.n_seeds > 1 else ""
                text = f"{r[mean]:.3f}{sd_text}"
                cells.append(f"**{text}**" if np.isclose(r[mean], best[f]) else text)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    seeds = sorted(table["seed"].unique())
    text = [
        "# Data efficiency: pyro-hea against supervised baselines",
        "",
        (f"Test ROC AUC and accuracy, mean ± sd over split seeds {', '.join(map(str, seeds))}, by label fraction "
         "(column header: fraction of the labelled training split that keeps its labels, and the number of "
         "labelled alloys). Every method sees the same split and label subset "
         "(`paper_split(df, seed=s, label_fraction=f)` on Pei 2020). Bold: best mean in the column."),
        "",
        "## Test ROC AUC",
        "",
        grid("auc_mean", "auc_sd"),
        "",
        "## pyro-hea against its labels-only ablation and the best baseline, paired by seed",
        "",
        ("Test ROC AUC of `pyro-hea` minus the other method's on the same split, mean over seeds with a 95 % "
         "t interval; the best baseline is the one with the best mean test AUC at that fraction (in the "
         "log-loss tables too). An interval that "
         "holds 0 is a difference the seeds cannot resolve."),
        "",
        _paired_markdown(table),
        "",
        "## Test ROC AUC on the test alloys with 4 or more elements",
        "",
        (f"About {table['details'].map(lambda d: d.get('n_test_multi', np.nan)).mean():.0f} of the 106 test alloys "
         "of a random split have 4 or more elements, so these AUCs are noisy."),
        "",
        grid("multi_mean", "multi_sd"),
        "",
        "## Validation ROC AUC (what selection sees)",
        "",
        grid("val_mean", "val_sd"),
        "",
        "## Test accuracy",
        "",
        grid("acc_mean", "acc_sd"),
        "",
        *([] if s["ece_mean"].isna().all() else [
            "## Calibration on test: log-loss and expected calibration error (lower is better)",
            "",
            "Log-loss of the predicted probability of single-phase:",
            "",
            grid("ll_mean", "ll_sd", lower=True),
            "",
            "pyro-hea's log-loss minus the other method's, paired by seed (negative: pyro-hea is better):",
            "",
            _paired_markdown(table, "test_log_loss"),
            "",
            "Expected calibration error (10 equal-width bins):",
            "",
            grid("ece_mean", "ece_sd", lower=True),
            ""]),
        *([] if s["platt_mean"].isna().all() else [
            "### Log-loss after recalibration",
            "",
            "Every method's probabilities recalibrated alike, by Platt scaling (a logistic regression on the "
            "logit of p(single-phase)) fitted on the validation labels, the rows its selection already used:",
            "",
            grid("platt_mean", "platt_sd", lower=True),
            "",
            "pyro-hea's recalibrated log-loss minus the other method's, paired by seed:",
            "",
            _paired_markdown(table, "test_log_loss_platt"),
            ""]),
        "![AUC against label fraction](data_efficiency.png)",
        "",
        "## Protocol",
        "",
        ("- `pyro-hea`: the package default, StandardNormal z, UniformPhase y, trained on the labelled rows "
         "with labels and on all other training rows without. `pyro-hea/labels-only`: the same model with the "
         "unlabelled rows dropped. `pyro-hea/classifier-only`: the default's classifier q(y|x) alone on its "
         "term of the loss (same label weight, weight decay, optimizer, steps and selection), no ELBO. "
         "`pyro-hea/expert-z`: DescriptorAligned z (axes 0, 1 centred on standardized VEC and δ, scale 1 like "
         "the standard prior). `pyro-hea/expert-y`: EmpiricalRulesPhase y (confidence 0.3). The expert rows "
         f"run at {', '.join(f'{f:g}' for f in sorted(set(sum(map(list, METHOD_FRACTIONS.values()), []))))} only. "
         "pyro-hea keeps, among the weights at its evaluation steps, those with the best validation score "
         f"(`select_on = {meta.get('select_on')}`): one configuration, no hyperparameter search."),
        "- At 5% labels the 57 validation labels outnumber the 33 training labels, for every method alike.",
        (f"- pyro-hea settings (`PhaseModel.fit` overrides, seed = split seed): "
         f"`{json.dumps(meta['pyro_settings'], sort_keys=True)}`; "
         f"model config in effect: alpha = {meta.get('alpha')}, latent_dim = {meta.get('latent_dim')}, "
         "the other settings at the package defaults of this commit."),
        ("- Baselines: fit on the labelled rows only, standardized descriptors (scaler fit on the training rows), "
         "hyperparameters chosen by validation ROC AUC (ties: log-loss) over these grids "
         f"({', '.join(f'{m}: {int(np.prod([len(v) for v in g.values()]))} configurations' for m, g in BASELINE_GRIDS.items())}): ")
        + "; ".join(f"`{m}` {json.dumps({k: [list(v) if isinstance(v, tuple) else v for v in vals] for k, vals in g.items()})}"
                    for m, g in BASELINE_GRIDS.items()) + ".",
        "- The test split is scored once per configuration.",
        f"- Command: `{meta['command']}`",
        f"- Wall time: {meta['wall_time']}",
        "",
        ANALYSIS_MARKER,
    ]
    return "\n".join(text) + "\n" + keep


def plot(table: pd.DataFrame, path: Path) -> None:
    """AUC (and accuracy) against label fraction, mean ± sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyro_hea.diagnostics.plots import save_figure

    s = summary(table)
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    styles = {m: ("-", "o") if m.startswith("pyro-hea") else ("--", "s") for m in methods}
    offsets = np.linspace(-0.035, 0.035, len(methods))
    for ax, (mean, sd, label) in zip(axes, (("auc_mean", "auc_sd", "test ROC AUC"),
                                            ("acc_mean", "acc_sd", "test accuracy"))):
        for i, m in enumerate(methods):
            r = s[s.method == m].sort_values("label_fraction")
            x = r["label_fraction"].to_numpy() * 10 ** offsets[i]
            ls, marker = styles[m]
            ax.errorbar(x, r[mean], yerr=r[sd].fillna(0), ls=ls, marker=marker, ms=5, capsize=3, label=m,
                        color=f"C{i}")
        ax.set_xscale("log")
        fr = sorted(s["label_fraction"].unique())
        ax.set_xticks(fr)
        ax.set_xticklabels([f"{f:g}" for f in fr])
        ax.minorticks_off()
        ax.set_xlabel("label fraction (of the labelled training split, log scale)")
        ax.set_ylabel(f"{label} (mean ± sd over seeds)")
        ax.grid(alpha=0.3)
    axes[0].set_title("Test ROC AUC against label fraction")
    axes[1].set_title("Test accuracy against label fraction")
    axes[1].legend(loc="lower right", fontsize=9)
    save_figure(fig, path)


# ------------------------------------------------------------------- diagnostics
def gradient_diagnostics(model, df, split, n_samples: int = 8) -> dict:
    """How much the unlabelled ELBO term moves the classifier head, next to the labelled term.

    Returns the norms of the gradients of the classifier's parameters of
    (a) the labelled part of the loss (which reaches the classifier only
    through alpha * cross-entropy), (b) the unlabelled -ELBO (y enumerated;
    averaged over ``n_samples`` draws of z), and (c) an oracle: the
    cross-entropy of the unlabelled training rows with their hidden labels,
    the direction that would help. Cosines say whether (a) and (b) point
    the oracle's way. All terms are sums over alloys, as in training.
    """
    import pyro
    import torch

    from pyro_hea.infer.training import make_elbo

    vae = model.vae
    tensors = model.tensors(df)
    train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
    is_unl = (split[train_rows] == "unlabelled").to_numpy()
    train = tensors[np.flatnonzero(train_rows)]
    labelled, unlabelled_true = train[np.flatnonzero(~is_unl)], train[np.flatnonzero(is_unl)]
    unlabelled = unlabelled_true.hide_labels()
    params = list(vae.classifier.parameters())

    def flat(grads):
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])

    vae.train()
    elbo = make_elbo(strict=False)
    with pyro.get_param_store().scope():
        g_lab = flat(torch.autograd.grad(elbo.differentiable_loss(vae.model, vae.guide, labelled, None), params,
                                         allow_unused=True))
        g_unl = sum(flat(torch.autograd.grad(elbo.differentiable_loss(vae.model, vae.guide, None, unlabelled),
                                             params, allow_unused=True)) for _ in range(n_samples)) / n_samples
    known = unlabelled_true.y >= 0
    logits = vae.classifier(unlabelled_true.x[known], unlabelled_true.features[known])
    oracle = torch.nn.functional.cross_entropy(logits, unlabelled_true.y[known], reduction="sum")
    g_orc = flat(torch.autograd.grad(oracle, params))
    vae.eval()

    def cos(a, b):
        return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))

    return {
        "n_labelled": len(labelled), "n_unlabelled": len(unlabelled),
        "grad_norm_labelled_aux": float(g_lab.norm()), "grad_norm_unlabelled_elbo": float(g_unl.norm()),
        "ratio_unlabelled_to_labelled": float(g_unl.norm() / g_lab.norm().clamp_min(1e-30)),
        "cos_labelled_oracle": cos(g_lab, g_orc), "cos_unlabelled_oracle": cos(g_unl, g_orc),
        "cos_labelled_unlabelled": cos(g_lab, g_unl),
    }


def run_diagnostic(variant: dict, fraction: float, seed: int, pyro_settings: dict) -> list[dict]:
    """Fit one variant; measure the gradients at initialization and at the selected weights."""
    import torch
    from threadpoolctl import threadpool_limits

    from pyro_hea import PhaseModel, paper_split
    from pyro_hea.model.vae import ModelConfig
    from pyro_hea.model.priors import make_prior
    from pyro_hea.infer.training import TrainConfig

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites")  # labelled-only control
    df = _dataset()
    split = paper_split(df, seed=seed, label_fraction=fraction)
    settings = {**pyro_settings, **variant.get("overrides", {})}
    settings.setdefault("seed", seed)
    # the control without unlabelled rows trains on the labelled rows alone; the gradients
    # are still measured against the full split's unlabelled rows
    train_split = split.where(split != "unlabelled", "unused") if variant.get("labelled_only") else split
    pz, py = make_prior("z", variant["prior_z"]), make_prior("y", variant["prior_y"])
    mc, tc = ModelConfig(), TrainConfig()
    for k, v in settings.items():
        setattr(mc if hasattr(mc, k) else tc, k, v)
    mc.__post_init__()
    torch.manual_seed(tc.seed)
    untrained = PhaseModel.build(df, train_split, mc, tc, pz, py)
    rows = []
    started = time.perf_counter()
    model = PhaseModel.fit(df, train_split, prior_z=make_prior("z", variant["prior_z"]),
                           prior_y=make_prior("y", variant["prior_y"]), progress=False, **settings)
    seconds = time.perf_counter() - started
    val = (split == "val").to_numpy()
    val_m = _metrics(df["single_phase"][val].to_numpy(int), model.predict_proba(df[val]))
    hist = model.trainer.state.history
    curve = {"val_log_loss_first": hist["val_log_loss"][0], "val_log_loss_best": float(np.min(hist["val_log_loss"])),
             "val_log_loss_last": hist["val_log_loss"][-1], "val_accuracy_last": hist["val_accuracy"][-1],
             "steps_run": int(model.trainer.state.step)}
    for when, m in (("init", untrained), ("trained", model)):
        torch.manual_seed(0)
        rows.append({"seed": seed, "variant": variant["name"], "when": when, "alpha": float(m.vae.config.alpha),
                     "prior_z": variant["prior_z"], "prior_y": variant["prior_y"],
                     "val_auc": val_m["auc"], "val_accuracy": val_m["accuracy"],
                     "best_step": int(model.trainer.state.best_step), "fit_seconds": seconds, **curve,
                     **gradient_diagnostics(m, df, split)})
    return rows


def diagnose(fraction: float, seeds, pyro_settings: dict, jobs: int, out: Path,
             scheduler: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Gradient diagnostics for several alpha values and priors at one fraction, for each seed.

    Only validation metrics are reported: this is a diagnosis, not a model selection on test.
    """
    from pyro_hea.model.vae import ModelConfig

    alpha = pyro_settings.get("alpha", ModelConfig().alpha)
    sn, un = "standard-normal", "uniform"
    variants = [
        {"name": f"standard, alpha={alpha:g}", "prior_z": sn, "prior_y": un},
        {"name": f"standard, alpha={3 * alpha:g}", "prior_z": sn, "prior_y": un, "overrides": {"alpha": 3.0 * alpha}},
        {"name": f"standard, alpha={10 * alpha:g}", "prior_z": sn, "prior_y": un, "overrides": {"alpha": 10.0 * alpha}},
        {"name": f"standard, alpha={100 * alpha:g}", "prior_z": sn, "prior_y": un, "overrides": {"alpha": 100.0 * alpha}},
        {"name": f"expert-z, alpha={alpha:g}", "prior_z": "descriptor-aligned", "prior_y": un},
        {"name": f"expert-y, alpha={alpha:g}", "prior_z": sn, "prior_y": "empirical-rules"},
        {"name": f"labelled rows only, alpha={alpha:g}", "prior_z": sn, "prior_y": un, "labelled_only": True},
    ]
    tasks = [{"variant": v, "fraction": fraction, "seed": seed, "pyro_settings": pyro_settings}
             for seed in seeds for v in variants]
    results = _sweep(run_diagnostic, tasks, None, None, jobs, scheduler, None, progress, desc="diagnostics").results
    table = pd.DataFrame([r for rows in results for r in rows])
    order = {v["name"]: i for i, v in enumerate(variants)}
    table = table.sort_values(["seed", "variant", "when"],
                              key=lambda c: c.map(order) if c.name == "variant" else c).reset_index(drop=True)
    table.insert(0, "label_fraction", fraction)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    return table


# -------------------------------------------------------------------------- main
def _log_invocation(cache_dir: Path, settings: dict, counts: dict, seconds: float, jobs: int,
                    scheduler: str | None = None) -> list[dict]:
    """Append this invocation to ``invocations.jsonl`` (if it computed anything); return the
    logged invocations with the same pyro-hea settings, for the wall time in the note."""
    log = Path(cache_dir) / "invocations.jsonl"
    if counts["computed"]:
        log.parent.mkdir(parents=True, exist_ok=True)
        entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": seconds, "jobs": jobs,
                 **({"scheduler": scheduler} if scheduler else {}), "pyro_settings": settings, **counts}
        with open(log, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
    if not log.is_file():
        return [{"seconds": seconds}]
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    same = [e for e in entries if e.get("pyro_settings") == settings]
    return same or [{"seconds": seconds}]


def merge_csvs(paths, methods=None, fractions=None, seeds=None) -> tuple[pd.DataFrame, list[str]]:
    """Rows of committed ``data_efficiency.csv`` files as one table, the first file winning.

    Returns the table (``settings`` and ``details`` parsed back to dicts) and one line of
    provenance per file: how many rows it gave, and how many of its rows were already given by
    an earlier file (and of those, how many disagree on test AUC).
    """
    key = ["method", "label_fraction", "seed"]
    frames, notes, seen = [], [], None
    for path in map(Path, paths):
        if not path.is_file():
            raise SystemExit(f"--merge: {path} is not a file")
        frame = pd.read_csv(path, keep_default_na=True)
        missing = [c for c in [*key, "test_auc", "details"] if c not in frame.columns]
        if missing:
            raise SystemExit(f"--merge: {path} is not a data_efficiency.csv (no column {', '.join(missing)})")
        if methods is not None:
            frame = frame[frame.method.isin(methods)]
        if fractions is not None:
            frame = frame[np.isin(frame.label_fraction.round(6), np.round(fractions, 6))]
        if seeds is not None:
            frame = frame[frame.seed.isin(seeds)]
        frame = frame.drop_duplicates(key)
        if seen is None:
            fresh, dropped, disagree = frame, 0, 0
        else:
            both = frame.merge(seen, on=key, how="left", suffixes=("", "_first"), indicator=True)
            old = (both["_merge"] == "both").to_numpy()
            fresh = frame[~old]
            dropped = int(old.sum())
            disagree = int((~np.isclose(both.test_auc[old], both.test_auc_first[old])).sum())
        notes.append(f"`{path.as_posix()}`: {len(fresh)} rows"
                     + (f" ({dropped} more already given by an earlier file, {disagree} of them with a "
                        "different test AUC)" if dropped else ""))
        frames.append(fresh)
        seen = pd.concat(frames)[[*key, "test_auc"]]
    table = pd.concat(frames, ignore_index=True)
    if table.empty:
        raise SystemExit("--merge: no row of these files matches --methods, --fractions and --seeds")
    table["settings"] = [json.loads(s) if isinstance(s, str) and s else {} for s in table["settings"]]
    table["details"] = [json.loads(d) if isinstance(d, str) and d else {} for d in table["details"]]
    return in_method_order(table, dict.fromkeys([*METHODS, *table.method])), notes


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fractions", type=float, nargs="+", default=None, help=f"default: {' '.join(map(str, FRACTIONS))}")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help=f"default: {' '.join(map(str, SEEDS))}")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS, help="default: all")
    p.add_argument("--steps", type=int, default=None, help="pyro-hea SVI steps (default: TrainConfig.steps unless --settings sets it)")
    p.add_argument("--settings", default=None,
                   help="JSON file of PhaseModel.fit overrides for pyro-hea, e.g. {\"steps\": 1500, \"latent_dim\": 8}")
    p.add_argument("--jobs", type=int, default=1,
                   help="local worker processes (a Dask LocalCluster when more than 1)")
    p.add_argument("--scheduler", default=None,
                   help="address of a Dask scheduler to run the configurations on, e.g. tcp://HOST:8786 "
                        "(default: DASK_SCHEDULER_ADDRESS if set); its workers need pyro-hea")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where the CSV, markdown and PNG go")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--diagnose", action="store_true",
                   help="instead of the study: gradient diagnostics of the classifier head at the first fraction, per seed")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="CSV",
                   help="fit nothing: build the outputs from these data_efficiency.csv files (the first file "
                        "that has a row wins); --methods, --fractions and --seeds filter them only if given")
    args = p.parse_args(argv)
    if args.merge is None:  # the grid to fit
        args.fractions = list(FRACTIONS) if args.fractions is None else args.fractions
        args.seeds = list(SEEDS) if args.seeds is None else args.seeds
        args.methods = list(METHODS) if args.methods is None else args.methods
    return args


def write_outputs(table: pd.DataFrame, out: Path, settings: dict, wall_time: str, argv=None) -> dict:
    """Write ``data_efficiency.{csv,md,png}`` to ``out``, keeping the page's analysis; returns the page's meta."""
    from pyro_hea.infer.training import TrainConfig

    out.mkdir(parents=True, exist_ok=True)
    to_csv_frame(table).to_csv(out / "data_efficiency.csv", index=False, float_format="%.6g")
    pyro_rows = table[table.method.str.startswith("pyro-hea")]
    meta = {
        "pyro_settings": settings,
        "select_on": settings.get("select_on", getattr(TrainConfig(), "select_on", "val_loss")),
        "alpha": pyro_rows["details"].iloc[0].get("alpha") if len(pyro_rows) else None,
        "latent_dim": pyro_rows["details"].iloc[0].get("latent_dim") if len(pyro_rows) else None,
        "command": "python benchmarks/data_efficiency.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "wall_time": wall_time,
    }
    md_path = out / "data_efficiency.md"
    old = md_path.read_text() if md_path.is_file() else ""
    keep = old.split(ANALYSIS_MARKER, 1)[1].lstrip("\n") if ANALYSIS_MARKER in old else ""
    md_path.write_text(markdown(table, meta, keep))
    plot(table, out / "data_efficiency.png")
    return meta


def merge_main(args, argv=None) -> dict:
    """``--merge``: write the CSV, page and plot of rows taken from earlier runs' CSVs."""
    table, notes = merge_csvs(args.merge, args.methods, args.fractions, args.seeds)
    out = args.out_dir
    if any(p.resolve() == (out / "data_efficiency.csv").resolve() for p in args.merge):
        raise SystemExit(f"--merge: {out / 'data_efficiency.csv'} is one of the inputs; give another --out-dir")
    settings = next((s for s in table.loc[table.method.str.startswith("pyro-hea"), "settings"] if s), {})
    wall_time = ("no fit in this invocation; the rows were merged from " + "; ".join(notes)
                 + f". Their fits add up to {float(table['fit_seconds'].sum()) / 60:.1f} min of worker time")
    meta = write_outputs(table, out, settings, wall_time, argv)
    if not args.no_progress:
        print("\n".join(notes))
        print(summary(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"{len(table)} rows merged; wrote {out}")
    return {"table": table, "notes": notes, **meta}


def pyro_settings_from(args) -> dict:
    """The explicit pyro-hea settings of a run: --settings file, then --steps, default steps 1500."""
    settings = {}
    if args.settings:
        settings.update(json.loads(Path(args.settings).read_text()))
    if args.steps is not None:
        settings["steps"] = args.steps
    if "steps" not in settings:  # the package default, what `pyro-hea train` runs
        from pyro_hea.infer.training import TrainConfig

        settings["steps"] = TrainConfig().steps
    return settings


def main(argv=None) -> dict:
    """Run the study (or the diagnostics) and write the outputs; returns a summary dict."""
    args = parse_args(argv)
    if args.merge is not None:
        return merge_main(args, argv)
    if args.jobs < 1:
        raise SystemExit("--jobs must be at least 1")
    settings = pyro_settings_from(args)
    from pyro_hea.cluster import SchedulerUnreachable, resolve_scheduler

    scheduler = resolve_scheduler(args.scheduler)
    started = time.perf_counter()
    try:
        if args.diagnose:
            table = diagnose(args.fractions[0], args.seeds, settings, args.jobs,
                             args.out_dir / "data_efficiency_gradients.csv", scheduler=scheduler,
                             progress=not args.no_progress)
            print(table.to_string())
            return {"diagnostics": table, "seconds": time.perf_counter() - started}
        table, counts = run_study(args.methods, args.fractions, args.seeds, settings, args.cache_dir,
                                  jobs=args.jobs, progress=not args.no_progress, scheduler=scheduler)
    except SchedulerUnreachable as err:
        raise SystemExit(f"data_efficiency.py: {err}") from None
    seconds = time.perf_counter() - started
    invocations = _log_invocation(args.cache_dir, settings, counts, seconds, args.jobs, scheduler)
    fit_total = float(table["fit_seconds"].sum())
    wall_time = (f"{sum(i['seconds'] for i in invocations) / 60:.1f} min in total over the "
                 f"{len(invocations)} invocation(s) that computed configurations with these pyro-hea settings "
                 f"(this one: {seconds / 60:.1f} min, {counts['computed']} computed, {counts['cached']} from "
                 f"the cache, {f'on the Dask scheduler at {scheduler}' if scheduler else f'--jobs {args.jobs}'}); the fits in the table add up to {fit_total / 60:.1f} min "
                 "of worker time")
    out = args.out_dir
    meta = write_outputs(table, out, settings, wall_time, argv)
    if not args.no_progress:
        print(summary(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"{counts['computed']} computed, {counts['cached']} cached; {seconds:.0f} s; wrote {out}")
    return {"table": table, "counts": counts, "seconds": seconds, **meta}


if __name__ == "__main__":
    main()
