"""Latent-space design: draw z, decode it with y = target, realize, re-score, deduplicate.

:class:`LatentMixin` gives :class:`~pyro_hea.design.designer.Designer` its
:meth:`~LatentMixin.latent`, :meth:`~LatentMixin.sample_z`,
:meth:`~LatentMixin.decode` and :meth:`~LatentMixin.training_latents` methods.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pyro_hea.data.families import FAMILIES, family_matrix
from pyro_hea.design.result import DesignError, DesignResult, one_thread
from pyro_hea.design.space import realize
from pyro_hea.model.priors import StandardNormal
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["LatentMixin"]


class LatentMixin:
    """Latent-space design (a mixin of :class:`~pyro_hea.design.designer.Designer`)."""

    def _training_tensors(self, family: str | None) -> AlloyTensors:
        tensors = self.model.tensors(self.df.iloc[self.train_rows])
        tensors = tensors.hide_labels()
        if family is None:
            return tensors
        if family not in FAMILIES:
            raise DesignError(f"unknown family {family!r}; choose from {list(FAMILIES)}")
        member = (tensors.x.numpy() @ family_matrix(self.vocabulary)).argmax(axis=1) == FAMILIES.index(family)
        if not member.any():
            raise DesignError(f"no training alloy of family {family!r}")
        return tensors[np.flatnonzero(member)]

    @one_thread
    def sample_z(self, n: int, source: str = "prior", family: str | None = None, seed: int = 0) -> torch.Tensor:
        """Draw ``n`` latent points.

        Parameters
        ----------
        source : str
            ``"prior"``: from the model's prior p(z | alloy). The published
            prior N(0, I) does not depend on the alloy; a data-dependent prior
            (e.g. the family mixture) is evaluated at training alloys drawn at
            random (of ``family`` if given), so the draws follow the prior's
            mixture over the training data. ``"posterior"``: from the
            aggregate posterior, z ~ q(z | x_i, y_i) for training alloys x_i
            drawn at random (of ``family`` if given), with y_i each alloy's
            predicted class: the region of latent space the data occupies.
        family : str, optional
            An alloy family of :data:`~pyro_hea.data.families.FAMILIES`.
        seed : int
            Seed of the draws (the global random state is left alone).

        Examples
        --------
        >>> designer.sample_z(5, seed=0).shape  # doctest: +SKIP
        torch.Size([5, 2])
        """
        if n < 1:
            raise DesignError(f"n must be a positive number of candidates, got {n}")
        if source not in ("prior", "posterior"):
            raise DesignError(f"source must be 'prior' or 'posterior', got {source!r}")
        prior = self.model.vae.prior_z
        if source == "prior" and family is not None and isinstance(prior, StandardNormal):
            raise DesignError(
                "the model's z prior is N(0, I), the same for every family; use source='posterior' "
                "to draw from the region a family's alloys occupy"
            )
        rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.no_grad():
                if source == "prior" and isinstance(prior, StandardNormal):
                    return torch.randn(n, self.model.vae.config.latent_dim)
                pool = self._training_tensors(family)
                alloys = pool[rng.integers(0, len(pool), n)]
                if source == "prior":
                    return prior(alloys).sample()
                loc, scale = self.model.vae.encode(alloys)
                return loc + scale * torch.randn_like(loc)

    @one_thread
    def training_latents(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means of z of the training alloys, and their labels (-1 where unlabelled).

        Each alloy is encoded at its label, or at its predicted class when
        the label is unknown.

        Examples
        --------
        >>> z, y = designer.training_latents()  # doctest: +SKIP
        """
        tensors = self.model.tensors(self.df.iloc[self.train_rows])
        self.model.vae.eval()
        loc, _ = self.model.vae.encode(tensors)
        return loc.numpy(), tensors.y.numpy()

    @one_thread
    def decode(self, z, y, realistic: bool = True) -> np.ndarray:
        """Decode latent points with class ``y`` into at.% compositions.

        Elements in ``rules.exclude`` are removed and the rest renormalized;
        with ``realistic`` (default) the result goes through
        :func:`~pyro_hea.design.space.realize`.

        Examples
        --------
        >>> designer.decode(np.zeros((1, 2)), "single-phase").sum()  # doctest: +SKIP
        100.0
        """
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.model.vae.config.latent_dim:
            raise DesignError(f"z must have shape (n, {self.model.vae.config.latent_dim}), got {tuple(z.shape)}")
        x = self.model.vae.decode(z, self.class_index(y)).numpy().astype(float)
        if not self._allowed.all():
            x = np.where(self._allowed, x, 0.0)
            x = 100.0 * x / x.sum(axis=1, keepdims=True)
        return realize(x, self.rules) if realistic else x

    @one_thread
    def latent(self, n: int = 1000, target=1, contrast=None, source: str = "prior", family: str | None = None,
               z: np.ndarray | None = None, seed: int = 0, deduplicate: bool = True,
               compare: bool = True, accept: float | None = 0.5) -> DesignResult:
        """Latent-space design: decode z with y = target, realize, re-score, deduplicate.

        The decoder proposes; the model's own classifier re-classifies each
        realized alloy, and those with q(target | x) >= ``accept`` are the
        candidates (column ``accepted``). The judge is never consulted: its
        verdict on the candidates, and on all decodes, is the independent
        check reported in the summary (``summary["all_decodes"]`` holds the
        rates before acceptance).

        Parameters
        ----------
        n : int
            Latent points to draw (ignored when ``z`` is given).
        target : int or str
            Class to decode with.
        contrast : int or str, optional
            Class to decode the same z with, for comparison
            (:meth:`default_contrast` if None).
        source, family, seed
            Where z comes from (see :meth:`sample_z`).
        z : ndarray (n, latent_dim), optional
            Latent points to decode instead of drawing them.
        deduplicate : bool
            Keep one row per distinct composition (with the z of its first
            draw and a ``draws`` count).
        compare : bool
            Also decode each kept z with the contrast class and score it
            (columns ``formula_contrast``, ``p_model_contrast``,
            ``p_judge_contrast``, ``contrast_distance``).
        accept : float or None
            Threshold on ``p_model`` for a decode to become a candidate
            (0.5: the model classifies it as the target for K = 2); None
            accepts every valid, scored decode.

        Returns
        -------
        DesignResult
            The table has the columns of :meth:`score`, ``accepted``,
            ``draws`` and ``z_1`` .. ``z_d``, one row per distinct decode.

        Examples
        --------
        >>> designer.latent(n=100, target="single-phase", seed=0).table.columns[:3].tolist()  # doctest: +SKIP
        ['formula', 'n_elements', 'p_model']
        """
        started = time.perf_counter()
        target = self.class_index(target)
        contrast = self.default_contrast(target) if contrast is None else self.class_index(contrast)
        if accept is not None and not (0.0 <= accept <= 1.0):
            raise DesignError(f"accept must be a probability in [0, 1] or None, got {accept}")
        if z is None:
            z = self.sample_z(n, source, family, seed)
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        generated = len(z)
        x = self.decode(z, target)
        draws = np.ones(len(x), dtype=int)
        if deduplicate:
            keys = np.ascontiguousarray(np.rint(x / self.rules.resolution).astype(np.int32))
            keys = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()
            _, first, counts = np.unique(keys, return_index=True, return_counts=True)
            order = np.argsort(first)
            keep = first[order]
            x, z, draws = x[keep], z[keep], counts[order]
        table = self.score(x, target)
        attrs = dict(table.attrs)
        accepted = table["scored"].to_numpy() & table["valid"].to_numpy()
        if accept is not None:
            accepted &= table["p_model"].to_numpy() >= accept
        table["accepted"] = accepted
        table["draws"] = draws
        zs = z.numpy()
        for d in range(zs.shape[1]):
            table[f"z_{d + 1}"] = zs[:, d]
        x_contrast = None
        summary_extra = {}
        if compare:
            x_contrast = self.decode(z, contrast)
            other = self.score(x_contrast, target, novelty=False)
            table["formula_contrast"] = other["formula"].to_numpy()
            table["p_model_contrast"] = other["p_model"].to_numpy()
            table["p_judge_contrast"] = other["p_judge"].to_numpy()
            table["contrast_distance"] = 0.5 * np.abs(x - x_contrast).sum(axis=1)
            both = table["scored"].to_numpy() & other["scored"].to_numpy()
            summary_extra["contrast"] = {
                "class": self.class_names[contrast],
                "p_model_target": float(table.loc[both, "p_model"].mean()),
                "p_model_contrast": float(other.loc[both, "p_model"].mean()),
                "p_judge_target": float(table.loc[both, "p_judge"].mean()),
                "p_judge_contrast": float(other.loc[both, "p_judge"].mean()),
                "model_prefers_target": float((table.loc[both, "p_model"] > other.loc[both, "p_model"]).mean()),
                "judge_prefers_target": float((table.loc[both, "p_judge"] > other.loc[both, "p_judge"]).mean()),
                "mean_distance": float(table.loc[both, "contrast_distance"].mean()),
            }
        table.attrs.update(attrs)
        seconds = time.perf_counter() - started
        summary = self.summarize(table, "latent", target, generated, seconds, candidates=accepted)
        summary["accept"] = accept
        summary["all_decodes"] = self.rates(table, target)
        summary.update(summary_extra)
        summary["source"] = source if family is None else f"{source} ({family})"
        return DesignResult("latent", table, x, self.vocabulary, summary, x_contrast)

