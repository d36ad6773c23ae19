r"""Export a fitted model's posterior to :class:`arviz.InferenceData`.

:func:`to_inference_data` draws from the amortized posterior (the guide) of
a :class:`~pyro_hea.infer.phase_model.PhaseModel` for every alloy of a dataset table and
returns an ``InferenceData`` with these groups (dims in brackets):

``posterior``
    ``z`` [chain, draw, alloy, latent_dim]: draws from q(z | x, y). For an
    alloy of the ``labelled`` split, y is its label; for every other alloy
    (``unlabelled``, ``val``, ``test``) y is first drawn from q(y | x).
    ``y`` [chain, draw, alloy]: the class index z was drawn with.
``posterior_predictive``
    ``y`` [chain, draw, alloy]: a phase label drawn from q(y | x) for every
    alloy, the semi-supervised VAE's predictive distribution of the label.
    For non-labelled alloys these are the same draws as ``posterior.y``.
    With ``reconstructions=True`` also ``x`` [chain, draw, alloy, element]:
    a composition in at.% drawn from Multinomial(total_count,
    softmax(decoder(z, y))) at the posterior draw (z, y).
``observed_data``
    ``y`` [labelled_alloy]: the class index of every alloy whose label is
    known in the source, in every split. ``labelled_alloy`` carries a
    ``split`` coordinate: the labels of the ``labelled`` split were used in
    training; those of the other splits were not (for the ``unlabelled``
    split they were hidden, for ``val`` and ``test`` held out), and they are
    here so that the posterior predictive checks can be run per split.
    With ``reconstructions=True`` also ``x`` [alloy, element].
``constant_data``
    ``composition`` [alloy, element] in at.%, ``descriptors`` [alloy,
    descriptor] in their units, ``split`` [alloy], ``is_labelled`` [alloy]
    (the label entered training), ``n_elements`` [alloy], ``family``
    [alloy] (:mod:`pyro_hea.data.families`) and ``phase_is_single`` [phase].
``guide``
    ``q_y`` [alloy, phase]: q(y | x); ``q_z_loc`` and ``q_z_scale`` [alloy,
    phase, latent_dim]: the Normal q(z | x, y) for each class y.

Coordinates are real names: ``alloy`` holds canonical formulas, ``element``
element symbols, ``descriptor`` descriptor names and ``phase`` class names.

The draws are independent, so ``chain`` is a bookkeeping axis only: ESS and
R-hat measure the mixing of Markov chains and mean nothing for amortized
variational draws. Judge the fit with :mod:`pyro_hea.diagnostics.ppc` instead.

Examples
--------
>>> from pyro_hea import PhaseModel, load_dataset, paper_split
>>> df = load_dataset("pei2020"); split = paper_split(df, seed=0)
>>> model = PhaseModel.build(df, split)
>>> idata = to_inference_data(model, df, split, num_samples=10)
>>> dict(idata.posterior["z"].sizes)
{'chain': 1, 'draw': 10, 'alloy': 1055, 'latent_dim': 16}
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import torch
import xarray as xr

from pyro_hea import __version__
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.families import FAMILIES, families_from_fractions, family_matrix
from pyro_hea.data.splits import SPLITS

__all__ = ["to_inference_data", "single_phase_classes", "MULTI_PHASE_NAMES"]

#: Class names that mean "not a single-phase solid solution".
MULTI_PHASE_NAMES = frozenset({"multi-phase", "multi"})


def single_phase_classes(class_names) -> np.ndarray:
    """Boolean per class: True where the class is a single-phase solid solution.

    Examples
    --------
    >>> single_phase_classes(("multi-phase", "single-phase")).tolist()
    [False, True]
    >>> single_phase_classes(("BCC", "FCC", "HCP", "multi")).tolist()
    [True, True, True, False]
    """
    return np.array([name not in MULTI_PHASE_NAMES for name in class_names], dtype=bool)


def _dataset(variables: dict, coords: dict, attrs: dict | None = None) -> xr.Dataset:
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update(
        {"created_by": f"pyro-hea {__version__}", "inference_library": "pyro", **(attrs or {})}
    )
    return ds


def _draw(vae, alloys, is_labelled: np.ndarray, draws: int, reconstructions: bool):
    """The guide's parameters for every class, and the draws (from the current random state)."""
    n, k = len(alloys), vae.config.n_classes
    q_y = torch.softmax(vae.classifier(alloys.x, alloys.features), dim=-1)  # (n, k)
    every_y = torch.eye(k)[:, None, :].expand(k, n, k)  # (k, n, k)
    loc, scale = vae.encoder(alloys.x, alloys.features, every_y)  # (k, n, d), or (n, d) where y is not read
    loc, scale = (t.expand(k, n, t.shape[-1]) for t in torch.broadcast_tensors(loc, scale))
    loc, scale = loc.transpose(0, 1), scale.transpose(0, 1)  # (n, k, d)
    # y_rep ~ q(y|x) for every alloy; the latent y is the label where training used it.
    y_rep = torch.multinomial(q_y, draws, replacement=True).T  # (draws, n)
    y_post = torch.where(torch.as_tensor(is_labelled), alloys.y, y_rep)
    rows = torch.arange(n)
    z = torch.distributions.Normal(loc[rows, y_post], scale[rows, y_post]).sample()  # (draws, n, d)
    x_rep = None
    if reconstructions:  # x ~ Multinomial(N, softmax(decoder(z, y))), in chunks of draws, as at.%
        total = int(vae.config.total_count)
        x_rep = torch.cat(
            [
                torch.distributions.Multinomial(
                    total, logits=vae.decoder(z_c, vae.one_hot(y_c))
                ).sample()
                for z_c, y_c in zip(z.split(20), y_post.split(20))
            ]
        ) * (100.0 / total)
    return q_y, loc, scale, y_rep, y_post, z, x_rep


@torch.no_grad()
def to_inference_data(
    model,
    df: pd.DataFrame,
    split,
    num_samples: int = 500,
    num_chains: int = 1,
    seed: int = 0,
    reconstructions: bool = False,
) -> az.InferenceData:
    """Posterior draws of z, predictive draws of the phase label, and the data, as InferenceData.

    Parameters
    ----------
    model : PhaseModel
        A fitted (or just built) model.
    df : DataFrame
        The dataset table (:func:`~pyro_hea.data.datasets.load_dataset`).
    split : Series
        Split name per row of ``df`` (:func:`~pyro_hea.data.splits.paper_split`).
    num_samples : int
        Draws per chain.
    num_chains : int
        Chains; the draws are independent, so chains only split them up.
    seed : int
        Seed of the draws; the same seed gives the same InferenceData. The
        global torch and Pyro random state is left alone.
    reconstructions : bool
        Also draw compositions from p(x | z, y) (posterior predictive ``x``,
        observed ``x``). Off by default: it is chains x draws x alloys x
        elements numbers.

    Returns
    -------
    arviz.InferenceData
        See the module docstring for the groups, dims and coords.
    """
    if num_samples < 1 or num_chains < 1:
        raise PyroHeaError(
            f"num_samples and num_chains must be positive, got {num_samples}, {num_chains}"
        )
    split = pd.Series(split, index=df.index)
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise PyroHeaError(f"unknown split name(s) {unknown}; expected {list(SPLITS)}")
    vae = model.vae
    vae.eval()
    alloys = model.tensors(df)
    split_names = split.to_numpy().astype(str)
    labels = alloys.y.numpy()
    is_labelled = (split_names == "labelled") & (labels >= 0)
    with torch.random.fork_rng(devices=[]):  # seeded draws; the global random state is restored after
        torch.manual_seed(int(seed))
        q_y, loc, scale, y_rep, y_post, z, x_rep = _draw(
            vae, alloys, is_labelled, num_chains * num_samples, reconstructions
        )

    def per_chain(t: torch.Tensor) -> np.ndarray:
        return t.numpy().reshape(num_chains, num_samples, *t.shape[1:])

    formulas = df["formula"].astype(str).to_numpy()
    if len(set(formulas)) != len(formulas):
        raise PyroHeaError("the table has duplicate formulas; alloy coordinates must be unique")
    class_names = list(model.class_names)
    base = {"chain": np.arange(num_chains), "draw": np.arange(num_samples)}
    alloy = {"alloy": formulas}
    latent = {"latent_dim": np.arange(vae.config.latent_dim)}
    elements = {"element": list(model.vocabulary)}
    phase = {"phase": class_names}
    note = {
        "note": "independent draws from an amortized variational posterior; ESS and R-hat do not apply"
    }

    posterior = _dataset(
        {
            "z": (("chain", "draw", "alloy", "latent_dim"), per_chain(z)),
            "y": (("chain", "draw", "alloy"), per_chain(y_post).astype(np.int64)),
        },
        {**base, **alloy, **latent},
        note,
    )
    predictive = {"y": (("chain", "draw", "alloy"), per_chain(y_rep).astype(np.int64))}
    observed_rows = labels >= 0
    observed = {"y": (("labelled_alloy",), labels[observed_rows].astype(np.int64))}
    observed_coords = {
        "labelled_alloy": formulas[observed_rows],
        "split": ("labelled_alloy", split_names[observed_rows]),
    }
    if reconstructions:
        predictive["x"] = (("chain", "draw", "alloy", "element"), per_chain(x_rep))
        observed["x"] = (("alloy", "element"), alloys.x.numpy())
        observed_coords.update(alloy | elements)
    posterior_predictive = _dataset(
        predictive, {**base, **alloy, **(elements if reconstructions else {})}, note
    )
    observed_data = _dataset(observed, observed_coords)

    membership = torch.tensor(family_matrix(model.vocabulary), dtype=alloys.x.dtype)
    family = np.array(FAMILIES, dtype=object)[families_from_fractions(alloys.x, membership).numpy()]
    n_elements = (alloys.x > 0).sum(-1).numpy().astype(np.int64)
    constant_data = _dataset(
        {
            "composition": (("alloy", "element"), alloys.x.numpy()),
            "descriptors": (("alloy", "descriptor"), alloys.descriptors.numpy()),
            "split": (("alloy",), split_names),
            "is_labelled": (("alloy",), is_labelled),
            "n_elements": (("alloy",), n_elements),
            "family": (("alloy",), family.astype(str)),
            "phase_is_single": (("phase",), single_phase_classes(class_names)),
        },
        {**alloy, **elements, "descriptor": list(DESCRIPTOR_NAMES), **phase},
        {"composition_units": "at.%"},
    )
    guide = _dataset(
        {
            "q_y": (("alloy", "phase"), q_y.numpy()),
            "q_z_loc": (("alloy", "phase", "latent_dim"), loc.numpy()),
            "q_z_scale": (("alloy", "phase", "latent_dim"), scale.numpy()),
        },
        {**alloy, **phase, **latent},
        {"description": "q(y|x) and the Normal q(z|x,y) for each class y"},
    )
    attrs = {
        "num_samples": num_samples,
        "num_chains": num_chains,
        "seed": int(seed),
        "class_names": class_names,
        "latent_dim": vae.config.latent_dim,
    }
    for ds in (posterior, posterior_predictive, observed_data, constant_data, guide):
        ds.attrs.update(attrs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*guide.*")  # a group outside ArviZ's schema
        return az.InferenceData(
            posterior=posterior,
            posterior_predictive=posterior_predictive,
            observed_data=observed_data,
            constant_data=constant_data,
            guide=guide,
        )
