"""Held-out chemical systems: GroupKFold by element set over the >= 4-element alloys of Pei 2020.

The random paper split is 74% binaries, so its test AUC mostly measures
binaries. Here each fold holds out whole element sets (every alloy of a
chemical system, e.g. all Al-Co-Cr-Fe-Ni alloys, whatever their amounts)
from the 267 alloys with 4 or more elements, and trains on everything else:
all binaries, ternaries and the other folds' multicomponent alloys.

Per fold (``GroupKFold(5)`` over the element-set groups):

- ``test``: the fold's >= 4-element alloys;
- ``val``: 10% of the other alloys, drawn at random (seeded, stratified by
  nothing), for every method's selection;
- ``labelled``: the rest, with labels;
- ``unlabelled`` (pyro-hea only): the test alloys' *compositions*, without
  labels, as in a screening campaign where the candidates are known and
  their phases are not (transductive; the labels are never read).
  ``pyro-hea/labels-only`` is the same model without them.

Methods: the pyro-hea default (``PhaseModel.fit`` with no model options,
``--steps`` SVI steps), its labels-only ablation, its classifier alone,
and the supervised baselines of ``benchmarks/data_efficiency.py`` with the
same validation grids. The test fold is scored once per method.

Usage::

    python benchmarks/group_kfold.py --jobs 2
    python benchmarks/group_kfold.py --folds 5 --steps 20 --out-dir /tmp/gk  # tiny
    python benchmarks/group_kfold.py --methods pyro-hea pyro-hea/labels-only --set descriptor_model=gaussian \
        class_position=false --out-dir /tmp/gk  # a variant (docs/results/group_kfold_gaussian.md)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_OUT = REPO / "docs" / "results"
PYRO = ("pyro-hea", "pyro-hea/labels-only", "pyro-hea/classifier-only")
BASELINES = ("logistic-regression", "mlp", "hist-gradient-boosting", "random-forest")


def _data_efficiency():
    if "data_efficiency" in sys.modules:
        return sys.modules["data_efficiency"]
    try:  # beside this file: run from benchmarks/, or sent to a Dask worker with it
        return importlib.import_module("data_efficiency")
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location("data_efficiency", REPO / "benchmarks" / "data_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_efficiency"] = module
    spec.loader.exec_module(module)
    return module


def element_set(composition: dict) -> str:
    """The chemical system of an alloy: its elements, sorted, joined by '-'.

    Examples
    --------
    >>> element_set({"Ni": 0.2, "Al": 0.8})
    'Al-Ni'
    """
    return "-".join(sorted(composition))


def fold_splits(df: pd.DataFrame, n_folds: int = 5, seed: int = 0, val_fraction: float = 0.1):
    """One split Series per fold (values labelled / unlabelled / val / test), see the module docstring."""
    from sklearn.model_selection import GroupKFold

    de = _data_efficiency()
    multi = np.flatnonzero(de.multicomponent_rows(df) & df["single_phase"].notna().to_numpy())
    groups = df["composition"].iloc[multi].map(element_set).to_numpy()
    rng = np.random.default_rng(seed)
    out = []
    for fold, (_, test_idx) in enumerate(GroupKFold(n_splits=n_folds).split(multi, groups=groups)):
        split = pd.Series("labelled", index=df.index, dtype=object)
        test = multi[test_idx]
        split.iloc[test] = "test"
        rest = np.setdiff1d(np.flatnonzero(df["single_phase"].notna().to_numpy()), test)
        val = rng.choice(rest, size=int(round(val_fraction * len(rest))), replace=False)
        split.iloc[val] = "val"
        split.iloc[np.flatnonzero(df["single_phase"].isna().to_numpy())] = "unused"
        out.append((fold, split))
    return out


def run_fold(method: str, fold: int, split: pd.Series, settings: dict) -> dict:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    de = _data_efficiency()
    df = de._dataset()
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        if method in PYRO:
            train_split = split.copy()
            if method == "pyro-hea":  # the held-out compositions, labels hidden
                train_split[split == "test"] = "unlabelled"
            result = _fit_and_score(method, df, split, train_split, fold, settings)
        else:
            result = de.fit_baseline(method, df, split, fold)
    test = split == "test"
    return {"method": method, "fold": fold, "test_auc": result["test_auc"], "test_accuracy": result["test_accuracy"],
            "val_auc": result["val_auc"], "n_test": int(test.sum()),
            "n_test_systems": int(df.loc[test, "composition"].map(element_set).nunique()),
            "test_single_phase_rate": float(df.loc[test, "single_phase"].mean()),
            "n_labelled": int((split == "labelled").sum()), "fit_seconds": time.perf_counter() - started}


def _fit_and_score(method, df, split, train_split, seed, settings) -> dict:
    """Fit a pyro-hea method on ``train_split``; score on ``split``'s val and test rows."""
    from pyro_hea import PhaseModel

    de = _data_efficiency()
    settings = {**settings, "seed": seed}
    if method == "pyro-hea/classifier-only":
        model = de.fit_classifier_only(df, split, seed, settings)
    else:
        model = PhaseModel.fit(df, train_split, progress=False, **settings)
    return de._scores({}, df, split, model.predict_proba)


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="pyro-hea SVI steps (default: the package default)")
    p.add_argument("--methods", nargs="+", default=list(PYRO + BASELINES), choices=PYRO + BASELINES)
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (a Dask LocalCluster when more than 1)")
    p.add_argument("--scheduler", default=None,
                   help="address of a Dask scheduler to run the folds on (default: DASK_SCHEDULER_ADDRESS if set)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="PhaseModel.fit overrides of a pyro-hea variant (default: the package defaults)")
    args = p.parse_args(argv)
    from pyro_hea.commands.options import parse_settings
    from pyro_hea.errors import PyroHeaError

    try:
        variant = parse_settings(args.set)
    except PyroHeaError as err:
        raise SystemExit(f"group_kfold.py: {err}") from None
    de = _data_efficiency()
    df = de._dataset()
    settings = {**({} if args.steps is None else {"steps": args.steps}), **variant}
    tasks = [{"method": m, "fold": fold, "split": split, "settings": settings}
             for fold, split in fold_splits(df, args.folds) for m in args.methods]
    tasks.sort(key=lambda t: t["method"] not in PYRO)
    started = time.perf_counter()
    from pyro_hea.cluster import SchedulerUnreachable, resolve_scheduler

    scheduler = resolve_scheduler(args.scheduler)
    try:  # no cache: the folds are quick; in this process, on --jobs local workers, or on the cluster
        rows = de._sweep(run_fold, tasks, None, None, args.jobs, scheduler, None, True, desc="folds").results
    except SchedulerUnreachable as err:
        raise SystemExit(f"group_kfold.py: {err}") from None
    seconds = time.perf_counter() - started
    table = pd.DataFrame(rows).sort_values(["method", "fold"]).reset_index(drop=True)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "group_kfold.csv", index=False, float_format="%.6g")
    s = table.groupby("method", sort=False).agg(auc=("test_auc", "mean"), auc_sd=("test_auc", "std"),
                                                acc=("test_accuracy", "mean"), val=("val_auc", "mean"))
    s = s.loc[[m for m in args.methods if m in s.index]]
    folds = table[table.method == args.methods[0]]
    lines = ["# Held-out chemical systems: GroupKFold by element set over the >= 4-element alloys", "",
             f"{args.folds} folds over {int(folds['n_test'].sum())} alloys with 4 or more elements "
             f"({int(folds['n_test_systems'].sum())} element sets); each fold trains on every other alloy of "
             "Pei 2020. Test ROC AUC and accuracy, mean ± sd over folds. pyro-hea sees the held-out compositions "
             "without labels (transductive); `pyro-hea/labels-only` does not.", "",
             "| method | test AUC | test accuracy | val AUC |", "|---|---:|---:|---:|"]
    best = s["auc"].max()
    for m, r in s.iterrows():
        auc = f"{r.auc:.3f} ± {r.auc_sd:.3f}"
        lines.append(f"| {m} | {'**' + auc + '**' if np.isclose(r.auc, best) else auc} | {r.acc:.3f} | {r.val:.3f} |")
    lines += ["", "Per fold: test alloys / element sets / single-phase rate: "
              + "; ".join(f"{int(r.n_test)} / {int(r.n_test_systems)} / {r.test_single_phase_rate:.2f}"
                          for r in folds.itertuples()), "",
              f"- pyro-hea settings: `{json.dumps(settings)}` (package defaults otherwise); baselines: the grids of "
              "`benchmarks/data_efficiency.py`, chosen by validation ROC AUC.",
              f"- Command: `python benchmarks/group_kfold.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
              f"- Wall time: {seconds / 60:.1f} min "
              f"({f'on the Dask scheduler at {scheduler}' if scheduler else f'--jobs {args.jobs}'}).", ""]
    (out / "group_kfold.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return table


if __name__ == "__main__":
    main()
