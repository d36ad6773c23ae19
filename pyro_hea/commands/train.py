"""``pyro-hea train`` and ``pyro-hea evaluate``."""

from __future__ import annotations

import json
import os
import time

from pyro_hea import __version__
from pyro_hea.infer.phase_model import PhaseModel
from pyro_hea.data.datasets import load_dataset
from pyro_hea.model.vae import ModelConfig
from pyro_hea.diagnostics.plots import plot_training_curve
from pyro_hea.model.priors import Y_PRIORS, Z_PRIORS, make_prior
from pyro_hea.infer.run import MODEL_FILE, load_run, prepare_run_dir, write_json
from pyro_hea.data.splits import paper_split
from pyro_hea.infer.training import TrainConfig

_DEFAULTS = ModelConfig(), TrainConfig()


def add_parser(sub) -> None:
    m, t = _DEFAULTS
    p = sub.add_parser("train", help="fit the model on a dataset and write a run directory")
    p.add_argument("--dataset", default="pei2020", help="pei2020 (default), borg2020, peivaste2023 or a CSV path")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--force", action="store_true", help="overwrite files in a non-empty --out")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    p.add_argument("--classes", type=int, choices=(2, 4), default=2,
                   help="2: single- vs multi-phase; 4: BCC / FCC / HCP / multi")
    p.add_argument("--prior-z", choices=sorted(Z_PRIORS), default="standard-normal")
    p.add_argument("--prior-y", choices=sorted(Y_PRIORS), default="uniform")
    p.add_argument("--label-fraction", type=float, default=1.0, help="fraction of training labels kept")
    p.add_argument("--stratify", action="store_true", help="stratify the split by label")
    p.add_argument("--latent-dim", type=int, default=m.latent_dim)
    p.add_argument("--decoder", choices=("linear", "mlp"), default=m.decoder,
                   help="linear (default): logits linear in (z, y); mlp: the published decoder")
    p.add_argument("--total-count", type=int, default=m.total_count,
                   help="N, the atoms per alloy in the likelihood (weight of reconstruction against KL)")
    p.add_argument("--alpha", type=float, default=m.alpha, help="weight of the classification loss")
    p.add_argument("--epochs", type=int, default=t.steps, help="full-batch SVI steps (an epoch each)")
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train)

    e = sub.add_parser("evaluate", help="reload a run's checkpoint and print its metrics")
    e.add_argument("run_dir", help="a run directory written by pyro-hea train")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(run=run_evaluate)


def split_metrics(model: PhaseModel, df, split) -> dict:
    """Metrics of ``model`` on the val and test rows (the only place test is read)."""
    return {name: model.evaluate(df, (split == name).to_numpy()) for name in ("val", "test")}


def run_train(args) -> int:
    out = prepare_run_dir(args.out, force=args.force)
    label = "single_phase" if args.classes == 2 else "phase"
    df = load_dataset(args.dataset)
    split = paper_split(df, seed=args.seed, label_fraction=args.label_fraction, stratify=args.stratify, label=label)
    model_config = ModelConfig(n_classes=args.classes, latent_dim=args.latent_dim, alpha=args.alpha,
                               decoder=args.decoder, total_count=args.total_count)
    train_config = TrainConfig(steps=args.epochs, lr=args.lr, seed=args.seed)
    dataset = args.dataset if args.dataset in ("pei2020", "borg2020", "peivaste2023") else os.path.abspath(args.dataset)
    started = time.perf_counter()
    model = PhaseModel.fit(
        df, split, model_config, train_config,
        prior_z=make_prior("z", args.prior_z), prior_y=make_prior("y", args.prior_y),
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - started
    model.save(out / MODEL_FILE)
    split.to_frame().assign(formula=df["formula"])[["formula", "split"]].to_csv(out / "split.csv", index=False)
    config = {
        "pyro_hea_version": __version__, "dataset": dataset, "seed": args.seed, "classes": args.classes,
        "label_fraction": args.label_fraction, "stratify": args.stratify, "prior_z": args.prior_z,
        "prior_y": args.prior_y, "model": model_config.to_dict(), "training": train_config.to_dict(),
        "split_counts": {k: int(v) for k, v in split.value_counts().items()},
    }
    write_json(out / "config.json", config)
    metrics = split_metrics(model, df, split)
    metrics["fit_seconds"] = seconds
    metrics["steps"] = model.trainer.state.step
    metrics["best_step"] = model.trainer.state.best_step
    metrics["best_elbo_step"] = model.trainer.state.best_elbo_step
    write_json(out / "metrics.json", metrics)
    state = model.trainer.state
    per_network = model.trainer.config.select_on == "per_network"
    plot_training_curve(state.history, out / "training_curve.png", best_step=state.best_step,
                        best_elbo_step=state.best_elbo_step if per_network else None)
    if not args.quiet:
        print(_format(metrics))
        print(f"wrote {out}")
    return 0


def _format(metrics: dict) -> str:
    keys = ("auc", "accuracy", "f1", "brier", "ece", "elbo", "recon_mae", "recon_mae_present", "recon_set_match")
    lines = [f"{'split':<6}" + "".join(f"{k:>18}" for k in keys)]
    for name in ("val", "test"):
        lines.append(f"{name:<6}" + "".join(f"{metrics[name][k]:>18.4f}" for k in keys))
    return "\n".join(lines)


def run_evaluate(args) -> int:
    run = load_run(args.run_dir)
    metrics = split_metrics(run.model, run.df, run.split)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(_format(metrics))
    return 0
