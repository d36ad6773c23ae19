"""Latent-space design: draw z, decode it with y = target, realize, re-score, accept or resample.

:class:`LatentMixin` gives :class:`~pyro_hea.design.designer.Designer` its
:meth:`~LatentMixin.latent`, :meth:`~LatentMixin.sample_z`,
:meth:`~LatentMixin.decode` and :meth:`~LatentMixin.training_latents` methods.

The proposal has three parts, each a choice a metallurgist can read:

1. **Where z comes from.** By default from the *aggregate posterior* of the
   training alloys that already are what is asked for: alloys that meet the
   composition rules (high-entropy, palette elements only) and whose label
   (or, where unlabelled, predicted class) is the target. That is the region
   of latent space where the data hold such alloys. ``pool="rules"`` drops
   the class condition, ``pool="all"`` uses every training alloy, and
   ``source="prior"`` draws from the model's prior instead.
2. **Which elements the decoder may use.** Its element probabilities are
   restricted to the allowed elements (the palette, less ``exclude`` and the
   radioactive elements) and renormalized, which is the softmax of its
   logits over those elements alone.
3. **Which decodes become candidates.** A decode is *accepted* when it is a
   valid alloy under the rules, can be scored, lies inside the training
   descriptor range, is novel, and the model's own classifier gives the
   target at least ``accept``. Rejected decodes stay in the table with the
   reason in ``summary["rejected"]``; with ``n_accepted`` the designer draws
   more z until it has that many candidates. The judge is never consulted.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pyro_hea.data.families import FAMILIES, family_matrix
from pyro_hea.design.result import DesignError, DesignResult, one_thread
from pyro_hea.design.space import check_validity, realize
from pyro_hea.model.priors import StandardNormal
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["MAX_DRAWS", "POOLS", "SOURCES", "LatentMixin"]

#: The most latent points one call draws, over all rounds (memory: about 1 kB per draw).
MAX_DRAWS = 1_000_000

#: Where z comes from.
SOURCES = ("prior", "posterior")

#: Which training alloys back the draws (see :meth:`LatentMixin.sample_z`).
POOLS = ("target", "rules", "all")

#: Reasons a decode is not accepted, in the order they are checked.
REJECTIONS = ("invalid", "not scored", "out of domain", "known alloy", "model: not the target")


def _check_count(name: str, value, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DesignError(f"{name} must be a whole number of latent draws, got {value!r}")
    if value < 1:
        raise DesignError(f"{name} must be a positive number of candidates, got {value}")
    if value > limit:
        raise DesignError(f"{name} = {value:,} is more than the limit of {limit:,} latent draws per call; "
                          "draw in several calls with different seeds")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (0 <= seed < 2**63):
        raise DesignError(f"seed must be a whole number in [0, 2**63), got {seed!r}")
    return int(seed)


def _round_seed(seed: int, round_: int) -> int:
    """Round 0 uses ``seed`` itself, so one round is reproducible on its own."""
    return int(seed) if round_ == 0 else int(np.random.SeedSequence([int(seed), round_]).generate_state(1)[0])


class LatentMixin:
    """Latent-space design (a mixin of :class:`~pyro_hea.design.designer.Designer`)."""

    # ------------------------------------------------------------------ pool
    def _training_tensors(self) -> AlloyTensors:
        """The training alloys, with the labels of the rows the split calls unlabelled hidden (-1)."""
        tensors = self.model.tensors(self.df.iloc[self.train_rows])
        hide = torch.as_tensor(~self.train_labelled)
        tensors.y = torch.where(hide, torch.full_like(tensors.y, -1), tensors.y)
        return tensors

    def _training_classes(self) -> tuple[AlloyTensors, np.ndarray]:
        """The training alloys (labels hidden) and each one's class: its label, else the predicted class."""
        tensors = self._training_tensors()
        labels = tensors.y.numpy().copy()
        self.model.vae.eval()
        predicted = self.model.vae.predict_proba(tensors).argmax(-1).numpy()
        return tensors.hide_labels(), np.where(labels >= 0, labels, predicted)

    def design_pool(self, pool: str = "target", family: str | None = None, target=1) -> tuple[AlloyTensors, str]:
        """The training alloys behind posterior (and data-dependent prior) draws, and a description.

        ``pool="target"``: alloys that meet the composition rules (valid,
        only allowed elements) and whose label, or predicted class where
        unlabelled, is ``target``; ``"rules"``: every alloy that meets the
        rules; ``"all"``: every training alloy. ``family`` restricts further
        to one alloy family. The returned tensors carry each alloy's class
        in ``y``.

        Examples
        --------
        >>> alloys, what = designer.design_pool("target")  # needs a Designer on a trained model  # doctest: +SKIP
        >>> what  # doctest: +SKIP
        '30 training alloys: single-phase, meeting the composition rules'
        """
        if pool not in POOLS:
            raise DesignError(f"pool must be one of {list(POOLS)}, got {pool!r}")
        target = self.class_index(target)
        tensors, classes = self._training_classes()
        x = tensors.x.numpy().astype(float)
        keep = np.ones(len(x), dtype=bool)
        parts = []
        if pool == "target":
            keep &= classes == target
            parts.append(self.class_names[target])
        if pool in ("target", "rules"):
            keep &= check_validity(x, self.rules) & self._only_allowed(x)
            parts.append("meeting the composition rules")
        if family is not None:
            if family not in FAMILIES:
                raise DesignError(f"unknown family {family!r}; choose from {list(FAMILIES)}")
            member = (x @ family_matrix(self.vocabulary)).argmax(axis=1) == FAMILIES.index(family)
            if not member.any():
                raise DesignError(f"no training alloy of family {family!r}")
            keep &= member
            parts.append(f"of the {family} family")
        what = ", ".join(parts) or "any"
        if not keep.any():
            raise DesignError(
                f"no training alloy is {what} (pool {pool!r}); widen the palette or the rules, "
                "or use pool='rules' or 'all', or source='prior'"
            )
        rows = np.flatnonzero(keep)
        chosen = tensors[rows]
        chosen.y = torch.as_tensor(classes[rows], dtype=torch.long)
        return chosen, f"{len(rows)} training alloys: {what}"

    # ----------------------------------------------------------------- draws
    @one_thread
    def sample_z(self, n: int, source: str = "posterior", family: str | None = None, seed: int = 0,
                 pool: str = "target", target=1, spread: float = 1.0) -> torch.Tensor:
        """Draw ``n`` latent points.

        Parameters
        ----------
        source : str
            ``"posterior"`` (default): from the aggregate posterior,
            z ~ q(z | x_i, y_i) for training alloys x_i of the pool (see
            :meth:`design_pool`) drawn at random, at their class y_i: the
            region of latent space those alloys occupy. ``"prior"``: from the
            model's prior p(z | alloy). The published prior N(0, I) does not
            depend on the alloy; a data-dependent prior (e.g. the family
            mixture) is evaluated at alloys of the pool drawn at random.
        family : str, optional
            An alloy family of :data:`~pyro_hea.data.families.FAMILIES`.
        seed : int
            Seed of the draws (the global random state is left alone).
        pool : {"target", "rules", "all"}
            Which training alloys back the draws (:meth:`design_pool`).
        target : int or str
            The class of the ``"target"`` pool.
        spread : float
            Scale factor on q(z | x)'s standard deviation (posterior draws).

        Examples
        --------
        >>> designer.sample_z(5, seed=0).shape  # needs a Designer on a trained model  # doctest: +SKIP
        torch.Size([5, 2])
        """
        n = _check_count("n", n, MAX_DRAWS)
        seed = _check_seed(seed)
        if source not in SOURCES:
            raise DesignError(f"source must be 'prior' or 'posterior', got {source!r}")
        if not (isinstance(spread, (int, float)) and np.isfinite(spread) and spread >= 0):
            raise DesignError(f"spread must be a finite non-negative scale factor, got {spread!r}")
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
                alloys, _ = self.design_pool(pool, family, target)
                alloys = alloys[rng.integers(0, len(alloys), n)]
                if source == "prior":
                    return prior(alloys.hide_labels()).sample()
                self.model.vae.eval()
                loc, scale = self.model.vae.encode(alloys.hide_labels(), alloys.y)
                return loc + spread * scale * torch.randn_like(loc)

    @one_thread
    def training_latents(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means of z of the training alloys, and their labels (-1 where unlabelled).

        Each alloy is encoded at its label, or at its predicted class when
        the label is unknown.

        Examples
        --------
        >>> z, y = designer.training_latents()  # needs a Designer on a trained model  # doctest: +SKIP
        """
        tensors = self._training_tensors()
        self.model.vae.eval()
        loc, _ = self.model.vae.encode(tensors)
        return loc.numpy(), tensors.y.numpy()

    @one_thread
    def decode(self, z, y, realistic: bool = True) -> np.ndarray:
        """Decode latent points with class ``y`` into at.% compositions over the allowed elements.

        The decoder's element probabilities are restricted to the elements
        the rules allow (``rules.allowed``: the palette, less ``exclude`` and
        the radioactive elements) and renormalized: the softmax of the
        decoder's logits over the allowed elements alone. With ``realistic``
        (default) the result goes through :func:`~pyro_hea.design.space.realize`.
        A row whose allowed elements all get probability 0 comes back as NaN
        (scored as "not a composition").

        Examples
        --------
        >>> designer.decode(np.zeros((1, 2)), "single-phase").sum()  # needs a Designer on a trained model  # doctest: +SKIP
        100.0
        """
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.model.vae.config.latent_dim:
            raise DesignError(f"z must have shape (n, {self.model.vae.config.latent_dim}), got {tuple(z.shape)}")
        self.model.vae.eval()
        x = self.model.vae.decode(z, self.class_index(y)).numpy().astype(float)
        x = np.where(self._allowed, np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        x = np.clip(x, 0.0, None)
        total = x.sum(axis=1, keepdims=True)
        ok = total[:, 0] > 0
        out = np.full_like(x, np.nan)
        out[ok] = 100.0 * x[ok] / total[ok]
        if realistic and ok.any():
            out[ok] = realize(out[ok], self.rules)
        return out

    # ---------------------------------------------------------------- design
    def _accepted(self, table, accept: float | None) -> tuple[np.ndarray, dict]:
        """Which rows are candidates, and how many of the others fail each check first."""
        checks = [
            table["valid"].to_numpy(bool),
            table["scored"].to_numpy(bool),
            table["in_domain"].to_numpy(bool),
            table["novel"].to_numpy(bool),
            np.ones(len(table), dtype=bool) if accept is None else table["p_model"].fillna(-1).to_numpy() >= accept,
        ]
        passed = np.ones(len(table), dtype=bool)
        rejected = {}
        for name, ok in zip(REJECTIONS, checks):
            rejected[name] = int((passed & ~ok).sum())
            passed &= ok
        return passed, rejected

    @one_thread
    def latent(self, n: int = 1000, target=1, contrast=None, source: str = "posterior", family: str | None = None,
               z: np.ndarray | None = None, seed: int = 0, deduplicate: bool = True,
               compare: bool = True, accept: float | None = 0.5, pool: str = "target", spread: float = 1.0,
               n_accepted: int | None = None, max_rounds: int = 20) -> DesignResult:
        """Latent-space design: decode z with y = target, realize, re-score, accept; resample if asked.

        The decoder proposes; the model's own classifier re-classifies each
        realized alloy. A decode is accepted as a candidate (column
        ``accepted``) when it is valid under the composition rules, scored,
        inside the training descriptor range, novel, and q(target | x) >=
        ``accept``. The judge is never consulted: its verdict on the
        candidates, and on all decodes, is the independent check reported in
        the summary (``summary["all_decodes"]`` holds the rates before
        acceptance, ``summary["rejected"]`` why the others were rejected).

        Parameters
        ----------
        n : int
            Latent points to draw per round (ignored when ``z`` is given).
        target : int or str
            Class to decode with.
        contrast : int or str, optional
            Class to decode the same z with, for comparison
            (:meth:`default_contrast` if None).
        source, family, seed, pool, spread
            Where z comes from (see :meth:`sample_z`).
        z : ndarray (n, latent_dim), optional
            Latent points to decode instead of drawing them.
        deduplicate : bool
            Keep one row per distinct composition (with the z of its first
            draw and a ``draws`` count).
        compare : bool
            Also decode each kept z with the contrast class and score it
            (columns ``formula_contrast``, ``p_model_contrast``,
            ``p_judge_contrast``, ``valid_contrast``, ``contrast_distance``).
        accept : float or None
            Threshold on ``p_model`` for a decode to become a candidate
            (0.5: the model classifies it as the target for K = 2); None
            drops the threshold (the other checks still apply).
        n_accepted : int, optional
            Draw rounds of ``n`` points (seeds derived from ``seed``) until
            at least this many candidates are accepted, or ``max_rounds``
            rounds or :data:`MAX_DRAWS` draws are spent
            (``summary["rounds"]``).

        Returns
        -------
        DesignResult
            The table has the columns of :meth:`score`, ``accepted``,
            ``draws`` and ``z_1`` .. ``z_d``, one row per distinct decode.

        Examples
        --------
        >>> designer.latent(n=100, target="single-phase", seed=0).table.columns[:3].tolist()  # needs a Designer on a trained model  # doctest: +SKIP
        ['formula', 'n_elements', 'p_model']
        """
        started = time.perf_counter()
        target = self.class_index(target)
        contrast = self.default_contrast(target) if contrast is None else self.class_index(contrast)
        if accept is not None and not (isinstance(accept, (int, float)) and 0.0 <= accept <= 1.0):
            raise DesignError(f"accept must be a probability in [0, 1] or None, got {accept}")
        seed = _check_seed(seed)
        if n_accepted is not None:
            n_accepted = _check_count("n_accepted", n_accepted, MAX_DRAWS)
            max_rounds = _check_count("max_rounds", max_rounds, 10_000)
            if z is not None:
                raise DesignError("n_accepted draws new z until enough are accepted; it cannot be used with given z")
        if z is None:
            n = _check_count("n", n, MAX_DRAWS)
            pool_what = self.design_pool(pool, family, target)[1] if source == "posterior" or not isinstance(
                self.model.vae.prior_z, StandardNormal) else None
        else:
            z = np.asarray(z, dtype=np.float32)
            if len(z) > MAX_DRAWS:
                raise DesignError(f"{len(z):,} latent points is more than the limit of {MAX_DRAWS:,} per call")
            pool_what = None
        rounds, zs, xs = 0, [], []
        while True:
            z_round = self.sample_z(n, source, family, _round_seed(seed, rounds), pool, target, spread) \
                if z is None else torch.as_tensor(z)
            zs.append(z_round)
            xs.append(self.decode(z_round, target))
            rounds += 1
            if n_accepted is None or rounds >= max_rounds or (rounds + 1) * n > MAX_DRAWS:
                break
            probe = self._distinct(np.concatenate(xs), deduplicate)[0]
            found, _ = self._accepted(self.score(np.concatenate(xs)[probe], target), accept)
            if found.sum() >= n_accepted:
                break
        z_all, x = torch.cat(zs), np.concatenate(xs)
        generated = len(z_all)
        keep, draws = self._distinct(x, deduplicate)
        x, z_all = x[keep], z_all[torch.as_tensor(keep)]
        table = self.score(x, target)
        attrs = dict(table.attrs)
        accepted, rejected = self._accepted(table, accept)
        table["accepted"] = accepted
        table["draws"] = draws
        z_np = z_all.numpy()
        for d in range(z_np.shape[1]):
            table[f"z_{d + 1}"] = z_np[:, d]
        x_contrast = None
        summary_extra = {}
        if compare:
            x_contrast = self.decode(z_all, contrast)
            other = self.score(x_contrast, target, novelty=False)
            table["formula_contrast"] = other["formula"].to_numpy()
            table["p_model_contrast"] = other["p_model"].to_numpy()
            table["p_judge_contrast"] = other["p_judge"].to_numpy()
            table["valid_contrast"] = other["valid"].to_numpy(bool)
            with np.errstate(invalid="ignore"):
                table["contrast_distance"] = 0.5 * np.abs(x - x_contrast).sum(axis=1)
            both = table["scored"].to_numpy() & other["scored"].to_numpy()
            summary_extra["contrast"] = self._contrast_summary(table, other, both, accepted, contrast)
        table.attrs.update(attrs)
        seconds = time.perf_counter() - started
        summary = self.summarize(table, "latent", target, generated, seconds, candidates=accepted)
        summary["accept"] = accept
        summary["accept_rate"] = float(accepted.mean()) if len(table) else float("nan")
        summary["rejected"] = rejected
        summary["all_decodes"] = self.rates(table, target)
        summary["rounds"] = rounds
        summary.update(summary_extra)
        summary["source"] = source if family is None else f"{source} ({family})"
        if z is not None:
            summary["source"] = "given z"
        if pool_what is not None:
            summary["pool"] = pool_what
        if source == "posterior" and z is None and spread != 1.0:
            summary["spread"] = float(spread)
        return DesignResult("latent", table, x, self.vocabulary, summary, x_contrast)

    def _distinct(self, x: np.ndarray, deduplicate: bool) -> tuple[np.ndarray, np.ndarray]:
        """Rows to keep (first of each distinct composition, in draw order) and their draw counts."""
        if not deduplicate:
            return np.arange(len(x)), np.ones(len(x), dtype=int)
        grid = np.where(np.isfinite(x), np.rint(x / self.rules.resolution), -1)
        keys = np.ascontiguousarray(grid.astype(np.int32))
        keys = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first)
        return first[order], counts[order]

    def _contrast_summary(self, table, other, both: np.ndarray, accepted: np.ndarray, contrast: int) -> dict:
        """Model and judge on the y = target and the y = contrast decode of the same z.

        ``contrast_valid`` is the share of compared points whose contrast
        decode meets the composition rules too (a high-entropy alloy of the
        palette by default); ``judge_prefers_target_valid`` compares only the
        points where both decodes do.
        """

        def prefers(column: str, rows: np.ndarray) -> float:
            if not rows.any():
                return float("nan")
            return float((table.loc[rows, column].to_numpy() > other.loc[rows, column].to_numpy()).mean())

        return {
            "class": self.class_names[contrast],
            "compared": int(both.sum()),
            "p_model_target": float(table.loc[both, "p_model"].mean()),
            "p_model_contrast": float(other.loc[both, "p_model"].mean()),
            "p_judge_target": float(table.loc[both, "p_judge"].mean()),
            "p_judge_contrast": float(other.loc[both, "p_judge"].mean()),
            "model_prefers_target": prefers("p_model", both),
            "judge_prefers_target": prefers("p_judge", both),
            "judge_prefers_target_accepted": prefers("p_judge", both & accepted),
            "contrast_valid": float(other.loc[both, "valid"].mean()) if both.any() else float("nan"),
            "judge_prefers_target_valid": prefers("p_judge", both & table["valid"].to_numpy(bool)
                                                  & other["valid"].to_numpy(bool)),
            "mean_distance": float(table.loc[both, "contrast_distance"].mean()),
        }
