"""Priors on the latent z and the phase label y, as pluggable modules.

The interface is one method. A prior is a :class:`torch.nn.Module` whose
``forward(alloys)`` returns a distribution with batch shape ``(n_alloys,)``:

- a **z prior** returns one with event shape ``(latent_dim,)``;
- a **y prior** returns a :class:`~pyro.distributions.Categorical` over the
  K phase classes.

``alloys`` is an :class:`~pyro_hea.model.tensors.AlloyTensors` (compositions
``x`` in at.%, physical descriptors ``descriptors`` and standardized
``features``). Priors that read it are *data-dependent*: they condition on
the alloy's composition, which the model always observes. Any learnable
parameter of a prior is a module parameter, so it is trained and
checkpointed with the rest of the model. ``bind(vocabulary, n_classes,
latent_dim)`` is called once by the model so a prior can check its
settings and build lookup tables.

Write your own by subclassing :class:`LatentPrior` or :class:`PhasePrior`::

    class ShiftedNormal(LatentPrior):
        def forward(self, alloys):
            loc = torch.ones(len(alloys), self.latent_dim)
            return dist.Normal(loc, 1.0).to_event(1)

The expert priors are documented, with their sources, in ``docs/priors.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn

from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.families import FAMILIES, family_matrix, families_from_fractions

__all__ = [
    "LatentPrior",
    "PhasePrior",
    "StandardNormal",
    "AlloyFamilyMixture",
    "DescriptorAligned",
    "UniformPhase",
    "EmpiricalRulesPhase",
    "Z_PRIORS",
    "Y_PRIORS",
    "make_prior",
]


class LatentPrior(nn.Module):
    """Base class of priors p(z | alloy) with event shape ``(latent_dim,)``."""

    latent_dim: int = 2
    vocabulary: tuple[str, ...] = ()

    def bind(self, vocabulary: Sequence[str], n_classes: int, latent_dim: int) -> None:
        self.vocabulary = tuple(vocabulary)
        self.latent_dim = latent_dim

    def forward(self, alloys) -> dist.Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict:
        """Hyperparameters, stored in checkpoints to rebuild the prior."""
        return {}


class PhasePrior(nn.Module):
    """Base class of priors p(y | alloy), a Categorical over K classes."""

    n_classes: int = 2

    def bind(self, vocabulary: Sequence[str], n_classes: int, latent_dim: int) -> None:
        self.n_classes = n_classes

    def forward(self, alloys) -> dist.Categorical:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict:
        return {}


class StandardNormal(LatentPrior):
    """z ~ N(0, I), the prior of the published model.

    Examples
    --------
    >>> p = StandardNormal(); p.bind(["Fe"], 2, 3)
    >>> p.latent_dim
    3
    """

    def forward(self, alloys) -> dist.Distribution:
        zeros = alloys.x.new_zeros(len(alloys), self.latent_dim)
        return dist.Normal(zeros, 1.0).to_event(1)


class AlloyFamilyMixture(LatentPrior):
    """z ~ N(mu_family(x), sigma^2 I): one Gaussian per alloy family.

    The family (3d-transition, refractory, precious, light, other) is
    assigned from the composition by the rules of :mod:`pyro_hea.data.families`.
    The component means sit evenly on a circle of radius ``radius`` in the
    first two latent axes, so families start apart and the latent map reads
    by family. Data-dependent: p(z) conditions on the observed composition.

    Parameters
    ----------
    radius : float
        Distance of each family's mean from the origin.
    scale : float
        Standard deviation of each component.

    Examples
    --------
    >>> p = AlloyFamilyMixture(radius=2.0, scale=0.7); p.bind(["Fe", "W"], 2, 2)
    >>> p.means.shape
    torch.Size([5, 2])
    """

    def __init__(self, radius: float = 2.0, scale: float = 0.7):
        super().__init__()
        if not (radius >= 0 and scale > 0):
            raise PyroHeaError(f"AlloyFamilyMixture needs radius >= 0 and scale > 0, got {radius}, {scale}")
        self.radius, self.scale = float(radius), float(scale)

    def bind(self, vocabulary, n_classes, latent_dim):
        super().bind(vocabulary, n_classes, latent_dim)
        angles = torch.arange(len(FAMILIES), dtype=torch.float) * (2 * math.pi / len(FAMILIES))
        means = torch.zeros(len(FAMILIES), latent_dim)
        means[:, 0] = self.radius * torch.cos(angles)
        if latent_dim > 1:
            means[:, 1] = self.radius * torch.sin(angles)
        self.register_buffer("means", means, persistent=False)
        self.register_buffer(
            "membership", torch.tensor(family_matrix(vocabulary), dtype=torch.float), persistent=False
        )

    def forward(self, alloys) -> dist.Distribution:
        family = families_from_fractions(alloys.x, self.membership)
        return dist.Normal(self.means[family], self.scale).to_event(1)

    def config(self) -> dict:
        return {"radius": self.radius, "scale": self.scale}


class DescriptorAligned(LatentPrior):
    """z_d ~ N(standardized descriptor_d, sigma^2): latent axes aligned with physics.

    The prior mean of latent axis d is the standardized value of the d-th
    chosen descriptor (by default VEC and the size mismatch delta), so axis 1
    reads as valence electron concentration and axis 2 as lattice distortion,
    the two quantities behind the Guo and Zhang phase rules. Further axes
    have mean 0. Data-dependent.

    Parameters
    ----------
    descriptors : sequence of str
        Names from :data:`~pyro_hea.data.descriptors.DESCRIPTOR_NAMES`.
    scale : float
        Prior standard deviation around the descriptor value. The default
        1.0 matches :class:`StandardNormal`, so that a comparison of the two
        priors compares the prior means and not the prior variance (the old
        default, 0.5, also shrank every axis).

    Examples
    --------
    >>> p = DescriptorAligned(("VEC", "delta")); p.bind(["Fe"], 2, 2)
    >>> p.columns.tolist()
    [3, 4]
    """

    def __init__(self, descriptors: Sequence[str] = ("VEC", "delta"), scale: float = 1.0):
        super().__init__()
        unknown = [d for d in descriptors if d not in DESCRIPTOR_NAMES]
        if unknown or not descriptors:
            raise PyroHeaError(f"DescriptorAligned: unknown descriptor(s) {unknown}; choose from {DESCRIPTOR_NAMES}")
        if scale <= 0:
            raise PyroHeaError(f"DescriptorAligned: scale must be positive, got {scale}")
        self.descriptors, self.scale = tuple(descriptors), float(scale)

    def bind(self, vocabulary, n_classes, latent_dim):
        super().bind(vocabulary, n_classes, latent_dim)
        if len(self.descriptors) > latent_dim:
            raise PyroHeaError(
                f"DescriptorAligned aligns {len(self.descriptors)} descriptors but the latent has {latent_dim} axes"
            )
        self.register_buffer(
            "columns", torch.tensor([DESCRIPTOR_NAMES.index(d) for d in self.descriptors]), persistent=False
        )

    def forward(self, alloys) -> dist.Distribution:
        loc = alloys.features.new_zeros(len(alloys), self.latent_dim)
        loc[:, : len(self.descriptors)] = alloys.features[:, self.columns]
        return dist.Normal(loc, self.scale).to_event(1)

    def config(self) -> dict:
        return {"descriptors": list(self.descriptors), "scale": self.scale}


class UniformPhase(PhasePrior):
    """y ~ Categorical(1/K, ..., 1/K); Bernoulli(0.5) for K=2, as published.

    Examples
    --------
    >>> p = UniformPhase(); p.bind(["Fe"], 4, 2)
    >>> p.n_classes
    4
    """

    def forward(self, alloys) -> dist.Categorical:
        return dist.Categorical(logits=alloys.x.new_zeros(len(alloys), self.n_classes))


class EmpiricalRulesPhase(PhasePrior):
    """y ~ (1 - c) Uniform + c RuleVerdict(alloy): the phase rules, softened.

    The verdict uses two established empirical rules on the alloy's
    descriptors:

    - Yang & Zhang (2012): a solid solution forms when
      Omega = Tm dS_mix / |dH_mix| >= 1.1 and delta <= 6.6 %;
    - Guo et al. (2011), for K = 4: a solid solution is FCC when VEC >= 8.0
      and BCC when VEC < 6.87; in between both phases coexist (multi).

    HCP is never predicted by the rules, so it keeps the uniform share
    (1 - c)/K. ``confidence`` c in [0, 1) sets how far the prior leans
    towards the rules; data can overrule it (c = 0 is the uniform prior).

    Examples
    --------
    >>> p = EmpiricalRulesPhase(confidence=0.4); p.bind(["Fe"], 2, 2)
    >>> p.confidence
    0.4
    """

    def __init__(self, confidence: float = 0.3, omega_threshold: float | None = None,
                 delta_threshold: float | None = None):
        super().__init__()
        from hea_bench.rules import guo_vec, yang_omega

        if not (0.0 <= confidence < 1.0):
            raise PyroHeaError(f"EmpiricalRulesPhase: confidence must be in [0, 1), got {confidence}")
        self.confidence = float(confidence)
        self.omega_threshold = float(yang_omega.DEFAULT_THRESHOLD if omega_threshold is None else omega_threshold)
        # Yang & Zhang's joint criterion uses delta <= 6.6 %; hea-bench's zhang_delta rule uses 6.5 %.
        self.delta_threshold = float(6.6 if delta_threshold is None else delta_threshold)
        self.fcc_vec, self.bcc_vec = guo_vec.FCC_THRESHOLD, guo_vec.BCC_THRESHOLD

    def bind(self, vocabulary, n_classes, latent_dim):
        super().bind(vocabulary, n_classes, latent_dim)
        if n_classes not in (2, 4):
            raise PyroHeaError(f"EmpiricalRulesPhase supports K=2 or K=4 classes, got {n_classes}")

    def verdict(self, descriptors: torch.Tensor) -> torch.Tensor:
        """One-hot rule verdict over the K classes from physical descriptors."""
        col = {name: descriptors[..., i] for i, name in enumerate(DESCRIPTOR_NAMES)}
        dh = col["dH_mix"].abs() * 1000.0  # kJ/mol -> J/mol
        omega = torch.where(dh > 0, col["Tm"] * col["dS_mix"] / dh.clamp_min(1e-9),
                            torch.full_like(dh, float("inf")))
        solid_solution = (omega >= self.omega_threshold) & (col["delta"] <= self.delta_threshold)
        if self.n_classes == 2:  # classes: 0 multi-phase, 1 single-phase
            cls = solid_solution.long()
        else:  # classes: BCC, FCC, HCP, multi
            vec = col["VEC"]
            cls = torch.full_like(vec, 3, dtype=torch.long)
            cls = torch.where(solid_solution & (vec >= self.fcc_vec), torch.ones_like(cls), cls)
            cls = torch.where(solid_solution & (vec < self.bcc_vec), torch.zeros_like(cls), cls)
        return nn.functional.one_hot(cls, self.n_classes).to(descriptors.dtype)

    def forward(self, alloys) -> dist.Categorical:
        c = self.confidence
        probs = (1 - c) / self.n_classes + c * self.verdict(alloys.descriptors)
        return dist.Categorical(probs=probs)

    def config(self) -> dict:
        return {"confidence": self.confidence, "omega_threshold": self.omega_threshold,
                "delta_threshold": self.delta_threshold}


#: Shipped priors by name, for the CLI and checkpoints.
Z_PRIORS = {"standard-normal": StandardNormal, "family-mixture": AlloyFamilyMixture,
            "descriptor-aligned": DescriptorAligned}
Y_PRIORS = {"uniform": UniformPhase, "empirical-rules": EmpiricalRulesPhase}


def make_prior(kind: str, name: str, **kwargs) -> nn.Module:
    """Build a shipped prior by name (``kind`` is ``"z"`` or ``"y"``).

    Examples
    --------
    >>> type(make_prior("z", "family-mixture")).__name__
    'AlloyFamilyMixture'
    """
    table = Z_PRIORS if kind == "z" else Y_PRIORS
    if name not in table:
        raise PyroHeaError(f"unknown {kind} prior {name!r}; choose from {sorted(table)}")
    return table[name](**kwargs)


def prior_name(prior: nn.Module) -> str | None:
    """Registry name of a shipped prior, or None for a user's own class."""
    for table in (Z_PRIORS, Y_PRIORS):
        for name, cls in table.items():
            if type(prior) is cls:
                return name
    return None
