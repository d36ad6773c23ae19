"""``pyro-hea inspect RUN_DIR``: posterior export and posterior predictive checks of a run.

Writes into the run directory

- ``inference_data.nc``: the ArviZ InferenceData of
  :func:`~pyro_hea.diagnostics.inference_data.to_inference_data`;
- the PNGs of :func:`~pyro_hea.diagnostics.ppc_plots.write_report` (calibration, separation
  plot of the test split, single-phase-rate checks, latent space);
- ``ppc.json``: the posterior predictive p-values and the ECE per split
  (:func:`~pyro_hea.diagnostics.ppc.ppc_summary`).
"""

from __future__ import annotations

from pyro_hea.commands.options import check_int, check_seed

INFERENCE_DATA_FILE = "inference_data.nc"
PPC_FILE = "ppc.json"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "inspect", help="export a run's posterior to ArviZ and run the posterior predictive checks",
        description="Export a run's posterior to ArviZ (inference_data.nc) and run the posterior predictive "
                    "checks (ppc.json and PNG plots), written into the run directory.",
    )
    p.add_argument("run_dir", help="a run directory written by pyro-hea train")
    p.add_argument("--samples", type=int, default=500, help="posterior draws per alloy (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument(
        "--reconstructions",
        action="store_true",
        help="also store compositions drawn from p(x|z,y) in inference_data.nc (large)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, print nothing on success")
    p.set_defaults(run=run)


def run(args) -> int:
    check_int(args, "samples", 1, 100_000)
    check_seed(args)
    from pyro_hea.progress import stages
    from pyro_hea.diagnostics.inference_data import to_inference_data
    from pyro_hea.diagnostics.ppc import ppc_summary
    from pyro_hea.diagnostics.ppc_plots import write_report
    from pyro_hea.infer.run import load_run
    from pyro_hea.io import atomic_write, write_json

    with stages(["load the run", "posterior draws", "write inference_data.nc", "plots", "ppc.json"],
                "inspect", quiet=args.quiet) as step:
        step("load the run")
        r = load_run(args.run_dir)
        step("posterior draws")
        idata = to_inference_data(r.model, r.df, r.split, num_samples=args.samples, seed=args.seed,
                                  reconstructions=args.reconstructions)
        step("write inference_data.nc")
        atomic_write(r.path / INFERENCE_DATA_FILE, lambda tmp: idata.to_netcdf(tmp))
        step("plots")
        pngs = write_report(idata, r.path)
        step("ppc.json")
        summary = {"run_dir": str(r.path), "num_samples": args.samples, "seed": args.seed, **ppc_summary(idata)}
        write_json(r.path / PPC_FILE, summary)
    if not args.quiet:
        print(f"{'split':<11}{'labels':>7}{'ECE':>8}{'p(rate, all)':>14}")
        for split, s in summary["splits"].items():
            p = s["single_phase_rate"]["all"]["p_value"]
            ece = "-" if s["ece"] is None or s["ece"] != s["ece"] else f"{s['ece']:.3f}"
            print(f"{split:<11}{s['n_labels']:>7}{ece:>8}{'-' if p is None or p != p else f'{p:.3f}':>14}")
        print(
            f"wrote {r.path / INFERENCE_DATA_FILE}, {r.path / PPC_FILE} and "
            + ", ".join(p.name for p in pngs.values())
        )
    return 0
