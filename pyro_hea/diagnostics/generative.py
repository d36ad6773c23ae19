r"""The model's own classifier: p(y | x, f) from the generative model, term by term.

For an unlabelled alloy the ELBO sums over y, weighting each class's term

.. math::

    L_y(x) = \log p(y) + \mathbb E_{q(z, u \mid x, y)}\big[\log p(x \mid z, y) + \log p(z)
             - \log q(z \mid x, y) + \log p(f \mid u, y) + \log p(u) - \log q(u \mid x, y)\big]

by q(y | x). The gradient of that sum moves q(y | x) towards
:math:`\mathrm{softmax}_y L_y(x)`, the *generative posterior*: what the
generative model alone says the phase is. Semi-supervision can only help the
classifier where that posterior is better than the classifier (Nigam et al.
2000; Cozman & Cohen 2003). :func:`class_elbo_terms` estimates
:math:`L_y` for every class, split into the terms above, so that each view's
opinion of y can be scored on validation labels
(``benchmarks/generative_posterior.py``).

The draws of z and u can share their noise across classes
(``shared_noise=True``, common random numbers): the composition term then
cancels exactly in :math:`L_1 - L_0`, because the encoder subtracts the class
position exactly.
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from pyro_hea.errors import PyroHeaError
from pyro_hea.model.tensors import AlloyTensors
from pyro_hea.model.vae import PhaseVAE

__all__ = ["TERMS", "class_elbo_terms", "generative_posterior"]

#: The terms of L_y.
TERMS = ("phase prior", "composition", "latent", "descriptors", "style")
#: The term each sample site adds to (model sites with +log p, guide sites with -log q), by the
#: site name's prefix: ``z_labelled`` is z.
_MODEL_SITES = {"y": "phase prior", "x": "composition", "z": "latent", "f": "descriptors", "u": "style"}
_GUIDE_SITES = {"z": "latent", "u": "style"}


def _as_class(alloys: AlloyTensors, k: int) -> AlloyTensors:
    return AlloyTensors(alloys.x, alloys.descriptors, alloys.features, torch.full_like(alloys.y, k))


@torch.no_grad()
def class_elbo_terms(vae: PhaseVAE, alloys: AlloyTensors, draws: int = 16, seed: int = 0,
                     shared_noise: bool = True) -> dict[str, torch.Tensor]:
    """Monte Carlo estimates of each term of L_y for every class y, shape (K, n) per term.

    Parameters
    ----------
    vae : PhaseVAE
        A (trained) model.
    alloys : AlloyTensors
        The alloys; their labels are not read.
    draws : int
        Monte Carlo draws of (z, u) per class, averaged.
    seed : int
        Seed of the draws (the global RNG is left as it was).
    shared_noise : bool
        The same noise for every class (common random numbers), else
        independent draws per class.

    Examples
    --------
    >>> import numpy as np
    >>> from pyro_hea.data.splits import DescriptorScaler
    >>> from pyro_hea.model.vae import ModelConfig
    >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2))
    >>> a = AlloyTensors.from_compositions(np.array([[50., 50.], [20., 80.]]), ["Fe", "Ni"],
    ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
    >>> terms = class_elbo_terms(vae, a, draws=2)
    >>> sorted(terms), tuple(terms["latent"].shape)
    (['composition', 'descriptors', 'latent', 'phase prior', 'style'], (2, 2))
    >>> c = terms["composition"]  # the same for both classes: the class position cancels, up to float rounding
    >>> bool(((c[1] - c[0]).abs() <= 1e-6 * c.abs().max()).all())
    True
    """
    if draws < 1:
        raise PyroHeaError(f"draws must be at least 1, got {draws}")
    was_training = vae.training
    vae.eval()
    K, n = vae.config.n_classes, len(alloys)
    totals = {name: torch.zeros(K, n) for name in TERMS}
    try:
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            for k in range(K):
                one = _as_class(alloys, k)
                for r in range(draws):
                    torch.manual_seed(seed * 100_003 + r + (0 if shared_noise else 7_919 * (k + 1)))
                    guide = poutine.trace(vae.guide).get_trace(labelled=one)
                    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(labelled=one)
                    for trace, sites, sign in ((model, _MODEL_SITES, 1.0), (guide, _GUIDE_SITES, -1.0)):
                        for site, node in trace.nodes.items():
                            name = sites.get(site.split("_")[0]) if node["type"] == "sample" else None
                            if name is not None:
                                totals[name][k] += sign * node["fn"].log_prob(node["value"]) / draws
    finally:
        vae.train(was_training)
    return totals


def generative_posterior(vae: PhaseVAE, alloys: AlloyTensors, terms: tuple[str, ...] | None = None,
                         **kwargs) -> torch.Tensor:
    """softmax over y of the sum of ``terms`` (all by default) of L_y: shape (n, K).

    Keyword arguments go to :func:`class_elbo_terms`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyro_hea.data.splits import DescriptorScaler
    >>> vae = PhaseVAE(["Fe", "Ni"])
    >>> a = AlloyTensors.from_compositions(np.array([[50., 50.]]), ["Fe", "Ni"],
    ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
    >>> generative_posterior(vae, a, draws=2).shape
    torch.Size([1, 2])
    """
    parts = class_elbo_terms(vae, alloys, **kwargs)
    unknown = set(terms or ()) - set(parts)
    if unknown:
        raise PyroHeaError(f"unknown terms {sorted(unknown)}; the terms are {sorted(parts)}")
    total = sum(parts[name] for name in (terms or tuple(parts)))
    return torch.softmax(total.T, dim=-1)
