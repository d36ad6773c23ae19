"""One call that writes every explanation of a run: :func:`explain_run` (``pyro-hea explain``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyro_hea.explain.common import ExplainError
from pyro_hea.explain.latent import (disentanglement_score, latent_traversals, phase_probability_map,
                                     plot_latent_traversals, plot_phase_probability_map)
from pyro_hea.explain.shapley import (_require_shap, alloy_explanations, background_sample, global_importance,
                                      plot_alloy_explanation, plot_shap_bar, plot_shap_beeswarm, shap_values)
from pyro_hea.io import atomic_write, write_json

__all__ = ["explain_run"]


# ------------------------------------------------------------------- one call
def explain_run(run, out: str | os.PathLike, n_background: int = 100, n_explain: int | None = None,
                n_points: int = 11, n_grid: int = 41, output: str = "probability", seed: int = 0,
                alloys_to_explain: Sequence[str] | None = None, progress: bool = False) -> dict:
    """Write every interpretability plot and a JSON report for a run.

    Files written in ``out``: ``shap_bar.png``, ``shap_beeswarm.png``,
    ``shap_alloys.csv`` (per-alloy explanations of the test alloys),
    ``shap_alloy_<i>.png`` (waterfalls of a few alloys),
    ``latent_traversals.png``, ``latent_phase_map.png`` (latent_dim >= 2)
    and ``explain.json`` (global importances, disentanglement score and the
    settings).

    Parameters
    ----------
    run : Run
        From :func:`~pyro_hea.infer.run.load_run`.
    out : path
        Folder for the files.
    n_background : int
        Training alloys in the SHAP background.
    n_explain : int, optional
        Explain at most this many test alloys (all by default).
    n_points, n_grid : int
        Resolution of the traversals and of the latent map.
    output : {"probability", "logit"}
        What SHAP explains.
    alloys_to_explain : sequence of str, optional
        Formulas of test alloys to draw waterfalls for; by default the most
        and least confidently single-phase test alloys.
    progress : bool
        Show a progress bar over the stages, with an ETA.

    Returns
    -------
    dict
        The content of ``explain.json``.

    Examples
    --------
    >>> explain_run(load_run("runs/pei2020"), "runs/pei2020/explain")["global_importance"]   # needs a run written by pyro-hea train  # doctest: +SKIP
    """
    from pyro_hea.progress import stages

    with stages(["SHAP values", "SHAP plots", "latent traversals", "latent phase map", "disentanglement"],
                "explain", quiet=not progress) as step:
        return _explain_run(run, Path(out), n_background, n_explain, n_points, n_grid, output, seed,
                            alloys_to_explain, step)


def _explain_run(run, out: Path, n_background, n_explain, n_points, n_grid, output, seed, alloys_to_explain,
                 step) -> dict:
    _require_shap()
    out.mkdir(parents=True, exist_ok=True)
    model, df, split = run.model, run.df, run.split
    model.vae.eval()
    step("SHAP values")
    background = background_sample(model, df, split, n=n_background, seed=seed)
    test = df[(split == "test").to_numpy()]
    if n_explain is not None and len(test) > n_explain:
        test = test.iloc[np.sort(np.random.default_rng(seed).permutation(len(test))[:n_explain])]
    ex = shap_values(model, test, background, output=output)
    target = model.class_names[1]  # the class explained: single-phase for K = 2
    ex._pyro_hea_target = target
    ex._pyro_hea_output = (f"change in q({target} | x)" if output == "probability"
                           else f"change in log-odds of {target}")
    importance = global_importance(ex)
    table = alloy_explanations(ex, names=test["formula"])
    atomic_write(out / "shap_alloys.csv", lambda tmp: table.to_csv(tmp))
    step("SHAP plots")
    plot_shap_bar(ex, out / "shap_bar.png")
    plot_shap_beeswarm(ex, out / "shap_beeswarm.png")
    if alloys_to_explain is None:
        order = np.argsort(table["output"].to_numpy())
        picks = [int(order[-1]), int(order[0])]
    else:
        lookup = {f: i for i, f in enumerate(test["formula"])}
        missing = [a for a in alloys_to_explain if a not in lookup]
        if missing:
            raise ExplainError(f"alloy(s) {missing} are not among the explained test alloys")
        picks = [lookup[a] for a in alloys_to_explain]
    waterfalls = []
    for i, idx in enumerate(picks):
        name = str(test["formula"].iloc[idx])
        plot_alloy_explanation(ex, idx, out / f"shap_alloy_{i}.png", name=name)
        waterfalls.append({"file": f"shap_alloy_{i}.png", "alloy": name})

    step("latent traversals")
    train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
    names = [f"y = {y} ({n})" for y, n in enumerate(model.class_names)]
    traversal = latent_traversals(model, df[train_rows], n_points=n_points)
    plot_latent_traversals(traversal, out / "latent_traversals.png", class_names=names)
    files = ["shap_bar.png", "shap_beeswarm.png", "shap_alloys.csv", "latent_traversals.png"]
    files += [w["file"] for w in waterfalls]
    step("latent phase map")
    if model.vae.config.latent_dim >= 2 and model.n_classes == 2:
        held = df[split.isin(["val", "test"]).to_numpy()]
        pmap = phase_probability_map(model, held, n_grid=n_grid)
        labels = model.tensors(held).y.numpy()
        plot_phase_probability_map(pmap, out / "latent_phase_map.png", labels=labels, class_names=names)
        files.append("latent_phase_map.png")
    step("disentanglement")
    score = disentanglement_score(model, df, split, seed=seed)
    report = {
        "run_dir": str(run.path),
        "global_importance": {k: float(v) for k, v in importance.items()},
        "shap": {"output": output, "class_explained": target, "explained": "test alloys", "n_explained": len(test),
                 "n_background": len(background), "base_value": float(np.mean(ex.base_values)),
                 "algorithm": "exact (interventional, all 2^8 coalitions)"},
        "disentanglement": {**score, "method": "5-fold CV ROC AUC of logistic regression z -> y "
                                               "on posterior means of held-out alloys; 0.5 = disentangled"},
        "latent_phase_map": "q(single-phase | featurize(decode(z, y))) over z[0], z[1]",
        "prior_z": run.config.get("prior_z"), "prior_y": run.config.get("prior_y"),
        "latent_dim": int(model.vae.config.latent_dim),
        "waterfalls": waterfalls,
        "files": files + ["explain.json"],
    }
    write_json(out / "explain.json", report)
    return report
