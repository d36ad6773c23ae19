"""Iterative inversion and latent interpolation.

:class:`InversionMixin` gives :class:`~pyro_hea.design.designer.Designer`
its :meth:`~InversionMixin.invert` and :meth:`~InversionMixin.interpolate`
methods.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pyro_hea.data.composition import CompositionError, as_composition, canonical_formula
from pyro_hea.design.result import DesignError, DesignResult, one_thread
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["REFINE_STEPS", "InversionMixin"]

#: L-BFGS iterations that refine an encoding to the posterior mode (as
#: :meth:`~pyro_hea.model.vae.PhaseVAE.reconstruct` does).
REFINE_STEPS = 50

#: The most steps of an inversion or points of an interpolation path.
MAX_STEPS = 1000


class InversionMixin:
    """Iterative inversion and interpolation (a mixin of :class:`~pyro_hea.design.designer.Designer`)."""

    def _vector(self, alloy, what: str) -> np.ndarray:
        try:
            comp = as_composition(alloy)
        except CompositionError as err:
            raise DesignError(f"{what} alloy {alloy!r} cannot be read: {err}") from None
        outside = sorted(set(comp) - set(self.vocabulary))
        if outside:
            raise DesignError(
                f"{what} alloy {canonical_formula(comp)} has element(s) {outside} outside the model's vocabulary"
            )
        return np.array([[100.0 * comp.get(el, 0.0) for el in self.vocabulary]])

    def _encode(self, x: np.ndarray, refine_steps: int = REFINE_STEPS) -> torch.Tensor:
        """z of compositions, each at its predicted class: the posterior mode (see below).

        The amortized encoder's mean is refined by ``refine_steps`` L-BFGS
        iterations to the mode of p(z | x, y)
        (:meth:`~pyro_hea.model.vae.PhaseVAE.posterior_mode`), as the model's
        own reconstruction does; ``refine_steps=0`` keeps the encoder's mean.
        """
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, (int, np.integer)) or refine_steps < 0:
            raise DesignError(f"refine_steps must be a non-negative whole number, got {refine_steps!r}")
        tensors = AlloyTensors.from_compositions(x, self.vocabulary, self.model.scaler)
        vae = self.model.vae
        vae.eval()
        y = vae.predict_proba(tensors).argmax(-1)
        if refine_steps and hasattr(vae, "posterior_mode"):
            return vae.posterior_mode(tensors, y, steps=int(refine_steps)).detach()
        loc, _ = vae.encode(tensors, y)
        return loc

    @one_thread
    def invert(self, alloy, target=1, threshold: float = 0.9, max_steps: int = 20,
               refine_steps: int = REFINE_STEPS) -> DesignResult:
        """Iterative inversion: encode, decode with the target class, re-score; repeat.

        Step 0 is the starting alloy. At each step the current alloy is
        encoded at its predicted class (the posterior mode of z, refined from
        the encoder's mean by ``refine_steps`` L-BFGS iterations), decoded with
        y = target, realized and scored. It stops when a valid alloy (under
        the composition rules: by default at least 4 principal elements) has
        ``p_model`` at or above ``threshold``, when the composition stops
        changing (a fixed point of the map), or after ``max_steps`` steps.

        Returns
        -------
        DesignResult
            ``table`` is the trajectory: ``step``, the columns of
            :meth:`score` and ``z_1`` .. ``z_d`` (the encoding of the step's
            alloy). ``summary["stopped"]`` says why it ended.

        Examples
        --------
        >>> traj = designer.invert("Al2CoCrFeNi", target="single-phase").table  # needs a Designer on a trained model  # doctest: +SKIP
        >>> traj[["step", "formula", "p_model"]]  # doctest: +SKIP
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
            raise DesignError(f"threshold must be in (0, 1], got {threshold}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
                or not (0 <= max_steps <= MAX_STEPS):
            raise DesignError(f"max_steps must be a whole number in [0, {MAX_STEPS}], got {max_steps!r}")
        x = self._vector(alloy, "the starting")
        path, zs, stopped = [x[0]], [], "step budget"
        for step in range(max_steps + 1):
            row = self.score(x, target, novelty=False).iloc[0]
            p = row["p_model"] if row["valid"] else float("nan")  # only a valid alloy can end the search
            z = self._encode(x, refine_steps)
            zs.append(z.numpy()[0])
            if p >= threshold:
                stopped = "threshold reached"
                break
            if step == max_steps:
                break
            x_next = self.decode(z, target)
            if not np.all(np.isfinite(x_next)):
                stopped = "the decode has no allowed element"
                break
            if np.allclose(x_next, x):
                stopped = "fixed point (the composition stopped changing)"
                break
            x = x_next
            path.append(x[0])
        return self._trajectory("invert", np.array(path), np.array(zs), target, started,
                                {"stopped": stopped, "threshold": threshold})

    def _trajectory(self, mode: str, x: np.ndarray, z: np.ndarray, target: int, started: float,
                    extra: dict, t: np.ndarray | None = None) -> DesignResult:
        table = self.score(x, target)
        attrs = dict(table.attrs)
        table.insert(0, "step", np.arange(len(table)))
        if t is not None:
            table.insert(1, "t", t)
        for d in range(z.shape[1]):
            table[f"z_{d + 1}"] = z[:, d]
        table.attrs.update(attrs)
        seconds = time.perf_counter() - started
        summary = self.summarize(table, mode, target, len(table), seconds)
        summary.update(extra)
        summary["steps"] = int(len(table) - 1)
        return DesignResult(mode, table, x, self.vocabulary, summary)

    # ----------------------------------------------------------- interpolation
    @one_thread
    def interpolate(self, start, end, target=1, steps: int = 11, refine_steps: int = REFINE_STEPS) -> DesignResult:
        """Decode a straight line in z between two alloys at a fixed class y.

        Each end is encoded at its predicted class (posterior mode, as in
        :meth:`invert`); the
        ``steps`` points z(t) = (1 - t) z_start + t z_end, t in [0, 1], are
        decoded with y = ``target``, realized and scored. Steps 0 and the
        last are the decoded ends, not the alloys themselves.

        Returns
        -------
        DesignResult
            ``table`` has ``step``, ``t``, the columns of :meth:`score` and
            ``z_1`` .. ``z_d``; :meth:`DesignResult.composition_frame` gives
            the path as elements by step.

        Examples
        --------
        >>> path = designer.interpolate("NbMoTaW", "HfNbTaTiZr", steps=5)  # needs a Designer on a trained model  # doctest: +SKIP
        >>> path.composition_frame()  # doctest: +SKIP
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not (2 <= steps <= MAX_STEPS):
            raise DesignError(f"steps must be a whole number, at least 2 and at most {MAX_STEPS}, got {steps!r}")
        ends = np.vstack([self._vector(start, "the start"), self._vector(end, "the end")])
        z_ends = self._encode(ends, refine_steps)
        t = torch.linspace(0.0, 1.0, steps)[:, None]
        z = (1 - t) * z_ends[0] + t * z_ends[1]
        x = self.decode(z, target)
        return self._trajectory("interpolate", x, z.numpy(), target, started,
                                {"start": canonical_formula(as_composition(start)),
                                 "end": canonical_formula(as_composition(end))}, t=t.numpy()[:, 0])
