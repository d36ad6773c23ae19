"""Benchmark: what the generative model alone says the phase is, term by term (validation only).

For an unlabelled alloy the ELBO's gradient moves q(y|x) towards the
generative posterior softmax_y L_y(x) (:mod:`pyro_hea.diagnostics.generative`).
Semi-supervision can only help where that posterior knows more than the
classifier. This script fits the default model (exactly as
``benchmarks/data_efficiency.py`` does for ``pyro-hea``) at each label fraction
and split seed and scores, on the **validation** labels only (test is never
read):

- ``q``: ROC AUC of the classifier q(y|x);
- ``generative``: ROC AUC of L_1 - L_0 (16 draws, shared noise);
- one column per term of L_y (``latent``: log p(z) - log q(z|x,y), the class
  position's linear discriminant in the composition latent; ``descriptors``:
  log p(f|u,y); ``style``: log p(u) - log q(u|x,y); ``composition``:
  log p(x|z,y), equal for both classes in expectation);
- ``gap_*``: the median over alloys of |L_1 - L_0| from ONE draw, as a
  training step sees it, with independent draws per class (how Pyro's
  enumeration draws them) and with shared noise.

``--set KEY=VALUE ...`` fits a variant instead (``PhaseModel.fit`` overrides,
values read as JSON, else as strings); its rows are named by the settings.

Usage::

    python benchmarks/generative_posterior.py --jobs 2
    python benchmarks/generative_posterior.py --set shared_noise=true --jobs 2
    python benchmarks/generative_posterior.py --set descriptor_model=gaussian --jobs 2
    python benchmarks/generative_posterior.py --fractions 0.05 --seeds 0 --steps 20 --out-dir /tmp/gp  # tiny
"""

from __future__ import annotations

import argparse
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
TERM_COLUMNS = ("latent", "descriptors", "style", "composition")


def run_config(fraction: float, seed: int, settings: dict | None = None, steps: int | None = None,
               draws: int = 16, defaults: dict | None = None) -> dict:
    """Fit the default model on one split and score q and the generative posterior on validation.

    ``defaults`` (the package's default settings) is not read: it is part of the
    configuration so that a result cached before a default changed is not reused.
    """
    import torch
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from pyro_hea import PhaseModel, load_dataset, paper_split
    from pyro_hea.diagnostics.generative import class_elbo_terms

    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=seed, label_fraction=fraction)
    variant = dict(settings or {})
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        model = PhaseModel.fit(df, split, progress=False, seed=seed, **({"steps": steps} if steps else {}), **variant)
    t = model.tensors(df)
    val = t[np.flatnonzero((split == "val").to_numpy() & (t.y.numpy() >= 0))]
    y = val.y.numpy()
    vae = model.vae.eval()
    with torch.no_grad():
        log_q = torch.log_softmax(vae.classifier(val.x, val.features), -1)
    q_log_odds = (log_q[:, 1] - log_q[:, 0]).numpy()
    out = {"label_fraction": float(fraction), "seed": int(seed), "variant": variant_name(variant),
           "n_val": int(len(val)), "q": float(roc_auc_score(y, q_log_odds))}
    terms = class_elbo_terms(vae, val, draws=draws, seed=seed, shared_noise=True)
    gap = {name: (value[1] - value[0]).numpy() for name, value in terms.items()}
    total_gap = sum(gap.values())
    out["generative"] = float(roc_auc_score(y, total_gap))
    # both estimates of the log-odds of single-phase, added (a product of the two posteriors)
    out["q_times_generative"] = float(roc_auc_score(y, q_log_odds + total_gap))
    for name in TERM_COLUMNS:
        # below 1e-3 nats the term is equal for both classes (it cancels up to rounding): no opinion
        out[name] = float(roc_auc_score(y, gap[name])) if np.abs(gap[name]).max() > 1e-3 else 0.5
    for shared in (False, True):
        one = class_elbo_terms(vae, val, draws=1, seed=seed, shared_noise=shared)
        tag = "shared" if shared else "independent"
        out[f"gap_{tag}"] = float(np.median(np.abs(sum((v[1] - v[0]).numpy() for v in one.values()))))
        for name in ("composition", "latent", "descriptors"):
            out[f"gap_{tag}_{name}"] = float(np.median(np.abs((one[name][1] - one[name][0]).numpy())))
    out["fit_seconds"] = time.perf_counter() - started
    return out


def markdown(table: pd.DataFrame, command: str) -> str:
    cols = ["q", "generative", "q_times_generative", *TERM_COLUMNS]
    lines = [
        "# The generative posterior, term by term (validation only)",
        "",
        f"`{command}`",
        "",
        "ROC AUC on the validation labels, mean ± sd over split seeds, of the classifier q(y|x) and",
        "of L_1 − L_0 (the generative model's own opinion of the phase, 16 draws with shared noise), in",
        "total and term by term; `q_times_generative` adds the two log-odds (the product of the two",
        "posteriors). A term that does not depend on y scores 0.500. Test was not read.",
        "",
    ]
    for variant, part in table.groupby("variant", sort=False):
        lines += [f"**{'The default model' if variant == 'default' else 'Variant: ' + variant}**", "",
                  "| labels | " + " | ".join(cols) + " | median abs gap, one draw: independent / shared (nats) |",
                  "|---" * (len(cols) + 2) + "|"]
        for fraction, rows in part.groupby("label_fraction"):
            cells = [f"{rows[c].mean():.3f} ± {rows[c].std(ddof=1) if len(rows) > 1 else 0:.3f}" for c in cols]
            gaps = (f"{rows['gap_independent'].median():.1f} (composition {rows['gap_independent_composition'].median():.1f})"
                    f" / {rows['gap_shared'].median():.1f} (latent {rows['gap_shared_latent'].median():.1f},"
                    f" descriptors {rows['gap_shared_descriptors'].median():.1f})")
            lines.append(f"| {fraction:g} | " + " | ".join(cells) + f" | {gaps} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> pd.DataFrame:
    from pyro_hea.infer.sweep import run_sweep

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.25, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="PhaseModel.fit overrides of the variant to fit (default: the package default)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the package default)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "benchmarks" / ".cache" / "generative_posterior")
    args = parser.parse_args(argv)
    from pyro_hea.commands.options import parse_settings
    from pyro_hea.errors import PyroHeaError

    try:
        settings = parse_settings(args.set)
    except PyroHeaError as err:
        raise SystemExit(f"generative_posterior.py: {err}") from None
    from pyro_hea.infer.phase_model import default_settings

    configs = [{"fraction": f, "seed": s, "settings": settings, "steps": args.steps, "defaults": default_settings()}
               for s in args.seeds for f in args.fractions]
    result = run_sweep(run_config, configs, args.cache_dir, workers=args.jobs, desc="fits")
    table = pd.DataFrame(result.results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    csv = args.out_dir / "generative_posterior.csv"
    if csv.exists():  # keep the other variants' rows
        old = pd.read_csv(csv)
        old = old[old["variant"] != variant_name(settings)]
        table = pd.concat([old, table], ignore_index=True)
    order = {v: (v != "default", i) for i, v in enumerate(dict.fromkeys(table["variant"]))}
    table = table.sort_values(["variant", "label_fraction", "seed"], key=lambda c: c.map(order) if c.name == "variant" else c)
    table.to_csv(csv, index=False)
    command = "python benchmarks/generative_posterior.py --jobs 2 [--set KEY=VALUE ...]"
    (args.out_dir / "generative_posterior.md").write_text(markdown(table, command))
    print(markdown(table, command))
    print(json.dumps({"computed": result.computed, "cached": result.cached}))
    return table


if __name__ == "__main__":
    main()
