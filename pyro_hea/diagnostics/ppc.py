r"""Posterior predictive checks on phase labels, calibration and the latent space.

Every function reads the :class:`arviz.InferenceData` of
:func:`~pyro_hea.diagnostics.inference_data.to_inference_data`, so a check can be rerun
from ``inference_data.nc`` without the model. The figures of these checks are in
:mod:`pyro_hea.diagnostics.ppc_plots`.

**Posterior predictive p-values.** For a test statistic T of the labels of a
set of alloys, the p-value is the fraction of posterior predictive draws
whose statistic is at least the observed one,

.. math::

    p = \Pr\big(T(y^{rep}) \ge T(y^{obs})\big)
      \approx \frac{1}{S} \sum_{s=1}^S \mathbf 1\big[T(y^{rep}_s) \ge T(y^{obs})\big],

with :math:`y^{rep}_s \sim q(y \mid x)` for each alloy (ties count as "at
least", the usual convention for a discrete T). The statistic here is the
**single-phase rate**, the fraction of single-phase alloys, over a split, and
within it over the alloys with 2, 3, 4, 5 and 6 or more elements. A p-value
near 0 says the model predicts too few single-phase alloys for that group,
near 1 too many; a well-calibrated model gives values away from both ends
(for a small group ties push p somewhat above 0.5).

**Calibration.** The reliability diagram bins the probability of the
predicted class (the confidence) in 10 equal-width bins and plots each bin's
accuracy against its mean confidence; the expected calibration error (ECE)
is the count-weighted mean gap, the same number as ``ece`` in
``metrics.json`` (:func:`~pyro_hea.infer.metrics.expected_calibration_error`).

ESS and R-hat are not computed anywhere: the draws come from an amortized
variational posterior, not from Markov chains, so they carry no meaning.

Examples
--------
>>> from pyro_hea import PhaseModel, load_dataset, paper_split
>>> from pyro_hea.diagnostics.inference_data import to_inference_data
>>> df = load_dataset("pei2020"); split = paper_split(df, seed=0)
>>> idata = to_inference_data(PhaseModel.build(df, split), df, split, num_samples=50)
>>> table = single_phase_rate_ppc(idata)
>>> list(table.columns)
['split', 'group', 'n', 'observed', 'predicted_mean', 'predicted_low', 'predicted_high', 'p_value']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

from pyro_hea.infer.metrics import calibration_bins, expected_calibration_error
from pyro_hea.data.splits import SPLITS

__all__ = [
    "ELEMENT_GROUPS",
    "P_VALUE_CONVENTION",
    "element_group",
    "posterior_predictive_pvalue",
    "label_table",
    "rate_statistics",
    "single_phase_rate_ppc",
    "calibration_table",
    "calibration_by_split",
    "latent_means",
    "compare_fits",
    "ppc_summary",
]

#: Groups by number of elements, in the order they are reported; ``all`` is the whole split.
ELEMENT_GROUPS: tuple[str, ...] = ("2", "3", "4", "5", "6+")
GROUPS: tuple[str, ...] = ("all", *ELEMENT_GROUPS)

P_VALUE_CONVENTION = (
    "p = fraction of posterior predictive draws with T(y_rep) >= T(y_obs); "
    "T = single-phase rate; near 0: the model predicts too few single-phase "
    "alloys, near 1: too many"
)

_INTERVAL = 0.94


def element_group(n_elements) -> np.ndarray:
    """Group name per alloy by its number of elements: '2', '3', '4', '5' or '6+'.

    Examples
    --------
    >>> element_group([2, 5, 6, 9]).tolist()
    ['2', '5', '6+', '6+']
    """
    n = np.asarray(n_elements)
    return np.where(n >= 6, "6+", n.astype(str)).astype(object)


def posterior_predictive_pvalue(t_obs: float, t_rep: np.ndarray) -> float:
    """Fraction of draws with ``t_rep >= t_obs`` (see the module docstring).

    Examples
    --------
    >>> posterior_predictive_pvalue(0.5, np.array([0.4, 0.5, 0.6, 0.7]))
    0.75
    """
    return float(np.mean(np.asarray(t_rep) >= t_obs))


# ----------------------------------------------------------------- tables
def _as_models(idata) -> dict:
    return {"": idata} if isinstance(idata, az.InferenceData) else dict(idata)


def label_table(idata) -> pd.DataFrame:
    """One row per alloy: split, number of elements, family, observed label and q(single-phase).

    ``observed`` is the class index (-1 where no label is known);
    ``observed_single`` is 1.0 / 0.0 / NaN; ``p_single`` sums q(y|x) over the
    single-phase classes.
    """
    const = idata.constant_data
    alloys = const["alloy"].to_numpy()
    is_single = const["phase_is_single"].to_numpy().astype(bool)
    observed = pd.Series(-1, index=alloys)
    obs = idata.observed_data["y"]
    observed[obs["labelled_alloy"].to_numpy()] = obs.to_numpy()
    y = observed.to_numpy()
    q_y = idata.guide["q_y"].transpose("alloy", "phase").to_numpy()
    return pd.DataFrame(
        {
            "alloy": alloys,
            "split": const["split"].to_numpy().astype(str),
            "n_elements": const["n_elements"].to_numpy(),
            "group": element_group(const["n_elements"].to_numpy()),
            "family": const["family"].to_numpy().astype(str),
            "is_labelled": const["is_labelled"].to_numpy().astype(bool),
            "observed": y,
            "observed_single": np.where(y >= 0, is_single[np.clip(y, 0, None)].astype(float), np.nan),
            "p_single": q_y[:, is_single].sum(axis=1),
        }
    )


def _replicated_single(idata) -> np.ndarray:
    """(draws, alloys) 0/1: is the posterior predictive label single-phase."""
    is_single = idata.constant_data["phase_is_single"].to_numpy().astype(bool)
    y_rep = idata.posterior_predictive["y"].stack(sample=("chain", "draw")).transpose("sample", "alloy")
    return is_single[y_rep.to_numpy()].astype(float)


def rate_statistics(idata, splits: Sequence[str] = SPLITS) -> dict:
    """Observed and replicated single-phase rates per (split, group).

    Returns ``{(split, group): (t_obs, t_rep, n)}`` over the alloys of the
    split with a known label, where ``t_rep`` has one value per draw. A group
    without labelled alloys gives ``(nan, empty array, 0)``.
    """
    labels = label_table(idata)
    single_rep = _replicated_single(idata)
    out = {}
    for split in splits:
        for group in GROUPS:
            rows = (labels["split"] == split) & labels["observed_single"].notna()
            if group != "all":
                rows &= labels["group"] == group
            idx = np.flatnonzero(rows.to_numpy())
            if len(idx) == 0:
                out[split, group] = (float("nan"), np.empty(0), 0)
                continue
            t_obs = float(labels["observed_single"].to_numpy()[idx].mean())
            out[split, group] = (t_obs, single_rep[:, idx].mean(axis=1), len(idx))
    return out


def single_phase_rate_ppc(idata, splits: Sequence[str] = SPLITS) -> pd.DataFrame:
    """The single-phase-rate check as a table: one row per (split, group).

    Columns: ``n`` labelled alloys, ``observed`` rate, ``predicted_mean`` and
    the central 94% interval of the replicated rate, and ``p_value``
    (:data:`P_VALUE_CONVENTION`).
    """
    rows = []
    lo, hi = (1 - _INTERVAL) / 2, 1 - (1 - _INTERVAL) / 2
    for (split, group), (t_obs, t_rep, n) in rate_statistics(idata, splits).items():
        empty = n == 0
        rows.append(
            {
                "split": split,
                "group": group,
                "n": n,
                "observed": t_obs,
                "predicted_mean": float("nan") if empty else float(t_rep.mean()),
                "predicted_low": float("nan") if empty else float(np.quantile(t_rep, lo)),
                "predicted_high": float("nan") if empty else float(np.quantile(t_rep, hi)),
                "p_value": float("nan") if empty else posterior_predictive_pvalue(t_obs, t_rep),
            }
        )
    return pd.DataFrame(rows)


def calibration_table(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per confidence bin, count, mean confidence and accuracy.

    Bins are those of :func:`~pyro_hea.infer.metrics.expected_calibration_error`,
    so ``sum(n * |accuracy - confidence|) / sum(n)`` over the table is the ECE.

    Examples
    --------
    >>> t = calibration_table(np.array([1, 0, 1]), np.array([[.1, .9], [.8, .2], [.35, .65]]))
    >>> t[["n", "accuracy"]].values.tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    return pd.DataFrame(calibration_bins(y_true, probs, n_bins),
                        columns=["lower", "upper", "n", "confidence", "accuracy"])


def calibration_by_split(idata, splits: Sequence[str] = SPLITS, n_bins: int = 10) -> dict:
    """``{split: {"n", "ece", "accuracy", "table"}}`` over the alloys with a known label."""
    labels = label_table(idata)
    q_y = idata.guide["q_y"].transpose("alloy", "phase").to_numpy()
    out = {}
    for split in splits:
        idx = np.flatnonzero(((labels["split"] == split) & (labels["observed"] >= 0)).to_numpy())
        if len(idx) == 0:
            out[split] = {
                "n": 0,
                "ece": float("nan"),
                "accuracy": float("nan"),
                "table": calibration_table(np.empty(0, int), np.empty((0, q_y.shape[1])), n_bins),
            }
            continue
        y, p = labels["observed"].to_numpy()[idx], q_y[idx]
        out[split] = {
            "n": len(idx),
            "ece": expected_calibration_error(y, p, n_bins),
            "accuracy": float(np.mean(p.argmax(axis=1) == y)),
            "table": calibration_table(y, p, n_bins),
        }
    return out


def latent_means(idata) -> np.ndarray:
    """Posterior mean of z per alloy, shape (alloys, latent_dim), from the posterior draws."""
    return idata.posterior["z"].mean(("chain", "draw")).transpose("alloy", "latent_dim").to_numpy()


def ppc_summary(idata, splits: Sequence[str] = SPLITS) -> dict:
    """The p-values and ECE per split, as plain data (what ``ppc.json`` holds)."""
    rates = single_phase_rate_ppc(idata, splits)
    calib = calibration_by_split(idata, splits)

    def num(v):
        return None if v is None or not np.isfinite(v) else round(float(v), 6)

    out = {
        "p_value_convention": P_VALUE_CONVENTION,
        "ece": "expected calibration error of the predicted class's probability, 10 equal-width bins",
        "num_draws": int(
            idata.posterior_predictive.sizes["chain"] * idata.posterior_predictive.sizes["draw"]
        ),
        "splits": {},
    }
    for split in splits:
        rows = rates[rates["split"] == split].set_index("group")
        out["splits"][split] = {
            "n_labels": int(calib[split]["n"]),
            "ece": num(calib[split]["ece"]),
            "accuracy": num(calib[split]["accuracy"]),
            "single_phase_rate": {
                group: {
                    "n": int(r["n"]),
                    "observed": num(r["observed"]),
                    "predicted_mean": num(r["predicted_mean"]),
                    "p_value": num(r["p_value"]),
                }
                for group, r in rows.iterrows()
            },
        }
    return out


def compare_fits(idatas: Mapping[str, object], splits: Sequence[str] = ("val", "test")) -> pd.DataFrame:
    """Side by side, per fit: ECE, accuracy and the single-phase-rate p-values per split and group.

    Rows are (split, group) plus one ``ece`` and one ``accuracy`` row per
    split; columns are the fits' names.
    """
    columns = {}
    for name, idata in idatas.items():
        rates = single_phase_rate_ppc(idata, splits).set_index(["split", "group"])["p_value"]
        calib = calibration_by_split(idata, splits)
        values = {}
        for s in splits:
            values[s, "ECE"] = calib[s]["ece"]
            values[s, "accuracy"] = calib[s]["accuracy"]
            values.update({(s, f"p-value, rate {g}"): rates[s, g] for g in GROUPS})
        columns[name] = pd.Series(values)
    table = pd.DataFrame(columns)
    table.index.names = ["split", "quantity"]
    return table
