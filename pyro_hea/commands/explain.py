"""``pyro-hea explain RUN_DIR``: SHAP, latent traversals and the disentanglement score of a run."""

from __future__ import annotations

from pyro_hea.commands.options import check_int, check_seed


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="write SHAP plots, latent traversals and the disentanglement score of a run",
        description="Explain a trained run: SHAP of the classifier head over the 8 descriptors "
                    "(needs the shap extra: pip install -e \".[shap]\"), latent traversals, the "
                    "classifier over the latent plane, and the disentanglement AUC. Writes PNGs, "
                    "shap_alloys.csv and explain.json.",
    )
    p.add_argument("run_dir", help="a run directory written by pyro-hea train")
    p.add_argument("--out", default=None, help="folder for the files (default: RUN_DIR/explain)")
    p.add_argument("--background", type=int, default=100, help="training alloys in the SHAP background")
    p.add_argument("--max-alloys", type=int, default=None, help="explain at most this many test alloys")
    p.add_argument("--output", choices=("probability", "logit"), default="probability",
                   help="explain q(single-phase | x) or its log-odds")
    p.add_argument("--points", type=int, default=11, help="points per latent axis in the traversals")
    p.add_argument("--grid", type=int, default=41, help="grid points per axis of the latent phase map")
    p.add_argument("--seed", type=int, default=0, help="seed of the background draw and the CV folds")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing on success")
    p.set_defaults(run=run_explain)


def run_explain(args) -> int:
    from pathlib import Path

    check_int(args, "background", 2, 100_000)
    check_int(args, "max_alloys", 1, 10**7)
    check_int(args, "points", 2, 10_000)
    check_int(args, "grid", 2, 2_000)
    check_seed(args)

    from pyro_hea.explain.report import explain_run
    from pyro_hea.infer.run import load_run

    run = load_run(args.run_dir)
    out = Path(args.out) if args.out else run.path / "explain"
    report = explain_run(run, out, n_background=args.background, n_explain=args.max_alloys,
                         n_points=args.points, n_grid=args.grid, output=args.output, seed=args.seed,
                         progress=not args.quiet)
    if not args.quiet:
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(report["global_importance"].items())[:4])
        print(f"global importance (mean |SHAP|): {top}, ...")
        d = report["disentanglement"]
        auc = "-" if d["auc"] is None or d["auc"] != d["auc"] else f"{d['auc']:.3f}"
        print(f"disentanglement AUC (z -> y, {d['n']} held-out alloys): {auc}  (0.5 = disentangled)")
        print(f"wrote {out}: {', '.join(report['files'])}")
    return 0
