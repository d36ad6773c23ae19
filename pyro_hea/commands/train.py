"""``pyro-hea train`` and ``pyro-hea evaluate``.

The parser imports nothing heavy: options left out take the defaults of
:class:`~pyro_hea.model.vae.ModelConfig` and :class:`~pyro_hea.infer.training.TrainConfig`
(read when the command runs, so there is no copy of them to drift), and the prior
names below mirror :mod:`pyro_hea.model.priors` (a test keeps them equal).
"""

from __future__ import annotations

import json
import os
import sys
import time

from pyro_hea.commands.data import add_dataset_arguments, dataset_options
from pyro_hea.commands.design import SPACE_DEFAULTS, add_space_arguments
from pyro_hea.commands.options import check_int, check_number, check_seed

Z_PRIOR_NAMES = ("descriptor-aligned", "family-mixture", "standard-normal")
Y_PRIOR_NAMES = ("empirical-rules", "uniform")
BUILTIN_DATASETS = ("pei2020", "borg2020", "peivaste2023", "corpus")
METRIC_COLUMNS = ("auc", "accuracy", "f1", "brier", "ece", "elbo", "recon_mae", "recon_mae_present", "recon_set_match")



#: --class-position: the ModelConfig settings of each choice
CLASS_POSITIONS = {"learned": {"class_position": True},
                   "none": {"class_position": False},
                   "estimated": {"class_position": False, "estimate_class_position": True}}

def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fit the model on a dataset and write a run directory",
                       description="Fit the model on a dataset and write a run directory (model.pt, config.json, "
                                   "split.csv, metrics.json, training_curve.png). The run appears in one step "
                                   "when training has finished; a failed run leaves nothing behind.")
    add_dataset_arguments(p)  # --dataset, --formula-column, --label-column, --strict, --conflicts
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing run directory at --out")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training (0 to 2**32-1)")
    p.add_argument("--classes", type=int, choices=(2, 4), default=2,
                   help="2: single- vs multi-phase; 4: BCC / FCC / HCP / multi")
    p.add_argument("--prior-z", choices=Z_PRIOR_NAMES, default="standard-normal")
    p.add_argument("--prior-y", choices=Y_PRIOR_NAMES, default="uniform")
    p.add_argument("--label-fraction", type=float, default=1.0, help="fraction of training labels kept, in (0, 1]")
    p.add_argument("--stratify", action="store_true", help="stratify the split by label")
    p.add_argument("--latent-dim", type=int, help="dimension of z (default: ModelConfig.latent_dim)")
    p.add_argument("--decoder", choices=("linear", "mlp"),
                   help="linear: logits linear in z; mlp: the published decoder (default: ModelConfig.decoder)")
    p.add_argument("--total-count", type=int,
                   help="N, the atoms per alloy in the likelihood (weight of reconstruction against KL; "
                        "default: ModelConfig.total_count)")
    p.add_argument("--alpha", type=float, help="weight of the classification loss (default: ModelConfig.alpha)")
    p.add_argument("--descriptor-model", choices=("style", "gaussian"),
                   help="the descriptor view: style (an MLP of a 2-D style, the default) or gaussian (one "
                        "full-covariance Gaussian per class)")
    p.add_argument("--class-position", choices=CLASS_POSITIONS,
                   help="learned (the default): each class has a place in the latent; none: the composition "
                        "does not depend on y; estimated: none in training, then the class means of the latent")
    p.add_argument("--no-contrast-position", dest="contrast_position", action="store_false",
                   help="keep the trained multi-phase class position: fit no contrast position for design after "
                        "training (ModelConfig.contrast_position)")
    p.add_argument("--epochs", type=int, help="full-batch SVI steps, an epoch each (default: TrainConfig.steps)")
    p.add_argument("--lr", type=float, help="learning rate (default: TrainConfig.lr)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing on success")
    g = p.add_argument_group(
        "unlabelled candidates",
        "compositions without labels added to the unlabelled training split: a file (--unlabelled) or a generated "
        "design space (--unlabelled-space, set by --palette, --k, --grid-step, --grid-min and --grid-max, the "
        "options of design --mode screen). A candidate that equals an alloy of the dataset (any split), repeats "
        "another, is malformed or has an element outside the dataset's is dropped; the counts are printed "
        "before training and kept in config.json")
    g.add_argument("--unlabelled", metavar="FILE",
                   help="CSV, TSV or Excel file with a formula column (a label column is ignored); malformed rows "
                        "are reported by line and left out")
    g.add_argument("--unlabelled-formula-column", metavar="COLUMN",
                   help="column of --unlabelled with the formulas (default: found as for --dataset)")
    g.add_argument("--unlabelled-space", action="store_true",
                   help="add every alloy of a generated space (at most 10^7) as an unlabelled candidate")
    add_space_arguments(g, "comma-separated elements of the --unlabelled-space; default: the common HEA elements, "
                           "which must all be in the dataset", defaults=False)
    p.set_defaults(run=run_train)

    e = sub.add_parser("evaluate", help="reload a run's checkpoint and print its metrics")
    e.add_argument("run_dir", help="a run directory written by pyro-hea train")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(run=run_evaluate)


def split_metrics(model, df, split) -> dict:
    """Metrics of ``model`` on the val and test rows (the only place test is read)."""
    return {name: model.evaluate(df, (split == name).to_numpy()) for name in ("val", "test")}


def _check_options(args) -> None:
    from pyro_hea.errors import PyroHeaError

    check_seed(args)
    check_int(args, "epochs", 1, 10**7)
    check_int(args, "latent_dim", 1, 1024)
    check_number(args, "alpha", 0.0, 1e6)
    check_number(args, "lr", 0.0, 10.0, low_open=True)
    check_number(args, "label_fraction", 0.0, 1.0, low_open=True)
    if args.total_count is not None and not 1 <= args.total_count <= 10**9:
        raise PyroHeaError(f"--total-count must be a positive number of atoms (total_count) up to 1e9, "
                           f"got {args.total_count}")
    _check_candidate_options(args)


def _check_candidate_options(args) -> None:
    from pyro_hea.errors import PyroHeaError

    space = [f"--{n.replace('_', '-')}" for n in SPACE_DEFAULTS if getattr(args, n) is not None]
    if args.unlabelled is not None and args.unlabelled_space:
        raise PyroHeaError("--unlabelled and --unlabelled-space both add unlabelled candidates; give one of them")
    if space and not args.unlabelled_space:
        raise PyroHeaError(f"{', '.join(space)} set the generated space of --unlabelled-space; add it, "
                           "or leave them out")
    if args.unlabelled_formula_column is not None and args.unlabelled is None:
        raise PyroHeaError("--unlabelled-formula-column names a column of the --unlabelled file; give the file")
    check_int(args, "k", 1, 118)
    check_number(args, "grid_step", 0.0, 100.0, low_open=True)
    check_number(args, "grid_min", 0.0, 100.0, low_open=True)
    check_number(args, "grid_max", 0.0, 100.0, low_open=True)


def candidate_pool(args, df, split):
    """The pool of ``--unlabelled`` or ``--unlabelled-space`` over the dataset's vocabulary, or None.

    A candidate equal to an alloy of any split of ``df`` is left out.
    """
    if args.unlabelled is None and not args.unlabelled_space:
        return None
    from pyro_hea.data.candidates import CandidatePool, split_exclusions
    from pyro_hea.data.datasets import element_vocabulary

    vocabulary = element_vocabulary(df)  # the model's vocabulary (PhaseModel.build)
    exclude = split_exclusions(df, split)
    if args.unlabelled is not None:
        return CandidatePool.from_file(args.unlabelled, vocabulary, exclude,
                                       formula_column=args.unlabelled_formula_column or "auto")
    from pyro_hea.design.distributed import SpaceSpec

    value = {n: SPACE_DEFAULTS[n] if getattr(args, n) is None else getattr(args, n) for n in SPACE_DEFAULTS}
    palette = tuple(el.strip() for el in value["palette"].split(",") if el.strip())
    spec = SpaceSpec(palette, value["k"], value["grid_step"], value["grid_min"], value["grid_max"])
    return CandidatePool.from_space(spec, vocabulary, exclude)


def run_train(args) -> int:
    _check_options(args)
    from pyro_hea import __version__
    from pyro_hea.data.datasets import load_dataset
    from pyro_hea.data.splits import paper_split
    from pyro_hea.design.contrast import ensure_contrast_position
    from pyro_hea.diagnostics.plots import plot_training_curve
    from pyro_hea.infer.phase_model import PhaseModel
    from pyro_hea.infer.run import MODEL_FILE, staged_run_dir
    from pyro_hea.infer.training import TrainConfig
    from pyro_hea.io import write_json
    from pyro_hea.model.priors import make_prior
    from pyro_hea.model.vae import ModelConfig

    label = "single_phase" if args.classes == 2 else "phase"
    given = lambda **options: {k: v for k, v in options.items() if v is not None}  # noqa: E731
    model_config = ModelConfig(n_classes=args.classes, **given(latent_dim=args.latent_dim, alpha=args.alpha,
                                                              decoder=args.decoder, total_count=args.total_count,
                                                              descriptor_model=args.descriptor_model),
                               contrast_position=args.contrast_position,
                               **CLASS_POSITIONS.get(args.class_position, {}))
    train_config = TrainConfig(seed=args.seed, **given(steps=args.epochs, lr=args.lr))
    dataset = args.dataset if args.dataset in BUILTIN_DATASETS else os.path.abspath(args.dataset)
    with staged_run_dir(args.out, force=args.force) as out:  # --out is checked before the data and training
        df = load_dataset(args.dataset, **dataset_options(args))
        split = paper_split(df, seed=args.seed, label_fraction=args.label_fraction, stratify=args.stratify,
                            label=label)
        pool = candidate_pool(args, df, split)
        if pool is not None and not args.quiet:
            print(pool.summary_text(), flush=True)
        started = time.perf_counter()
        model = PhaseModel.fit(
            df, split, model_config, train_config,
            prior_z=make_prior("z", args.prior_z), prior_y=make_prior("y", args.prior_y),
            progress=not args.quiet, candidates=pool,
        )
        ensure_contrast_position(model, df, split)  # the design's contrast class, saved with the model
        seconds = time.perf_counter() - started
        model.metadata["dataset"] = dataset
        model.save(out / MODEL_FILE)
        split.to_frame().assign(formula=df["formula"])[["formula", "split"]].to_csv(out / "split.csv", index=False)
        config = {
            "pyro_hea_version": __version__, "dataset": dataset, "dataset_options": dataset_options(args),
            "seed": args.seed, "classes": args.classes,
            "label_fraction": args.label_fraction, "stratify": args.stratify, "prior_z": args.prior_z,
            "prior_y": args.prior_y, "model": model_config.to_dict(), "training": train_config.to_dict(),
            "split_counts": {k: int(v) for k, v in split.value_counts().items()},
        }
        if pool is not None:  # the pool is not needed to load the run; this records what was trained on
            config["unlabelled_candidates"] = {"source": pool.to_dict(), "summary": pool.summary()}
        write_json(out / "config.json", config)
        metrics = split_metrics(model, df, split)
        metrics["fit_seconds"] = seconds
        state = model.trainer.state
        metrics.update(steps=state.step, best_step=state.best_step, best_elbo_step=state.best_elbo_step)
        write_json(out / "metrics.json", metrics)
        per_network = model.trainer.config.select_on == "per_network"
        plot_training_curve(state.history, out / "training_curve.png", best_step=state.best_step,
                            best_elbo_step=state.best_elbo_step if per_network else None)
        written = sorted(p.name for p in out.iterdir())
    if not args.quiet:
        print(format_metrics(metrics))
        print(f"wrote {args.out}: {', '.join(written)}", file=sys.stdout)
    return 0


def _cell(value) -> str:
    return f"{'-':>18}" if value is None or value != value else f"{value:>18.4f}"


def format_metrics(metrics: dict) -> str:
    """The val / test table ``train`` and ``evaluate`` print; undefined values (NaN) show as ``-``.

    Examples
    --------
    >>> row = dict.fromkeys(METRIC_COLUMNS, 0.5) | {"auc": float("nan")}
    >>> print(format_metrics({"val": row, "test": row}).splitlines()[1].split()[:3])
    ['val', '-', '0.5000']
    """
    lines = [f"{'split':<6}" + "".join(f"{k:>18}" for k in METRIC_COLUMNS)]
    for name in ("val", "test"):
        lines.append(f"{name:<6}" + "".join(_cell(metrics[name].get(k)) for k in METRIC_COLUMNS))
    return "\n".join(lines)


def run_evaluate(args) -> int:
    from pyro_hea.infer.run import load_run
    from pyro_hea.io import json_safe

    run = load_run(args.run_dir)
    metrics = split_metrics(run.model, run.df, run.split)
    if args.json:
        print(json.dumps(json_safe(metrics), allow_nan=False))
    else:
        print(format_metrics(metrics))
    return 0
