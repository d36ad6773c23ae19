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

__all__ = ["InversionMixin"]


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

    def _encode(self, x: np.ndarray) -> torch.Tensor:
        """Posterior mean of z for compositions, each at its predicted class."""
        tensors = AlloyTensors.from_compositions(x, self.vocabulary, self.model.scaler)
        self.model.vae.eval()
        loc, _ = self.model.vae.encode(tensors)
        return loc

    @one_thread
    def invert(self, alloy, target=1, threshold: float = 0.9, max_steps: int = 20) -> DesignResult:
        """Iterative inversion: encode, decode with the target class, re-score; repeat.

        Step 0 is the starting alloy. At each step the current alloy is
        encoded at its predicted class (posterior mean of z), decoded with
        y = target, realized and scored. It stops when ``p_model`` reaches
        ``threshold``, when the composition stops changing (a fixed point of
        the map), or after ``max_steps`` steps.

        Returns
        -------
        DesignResult
            ``table`` is the trajectory: ``step``, the columns of
            :meth:`score` and ``z_1`` .. ``z_d`` (the encoding of the step's
            alloy). ``summary["stopped"]`` says why it ended.

        Examples
        --------
        >>> traj = designer.invert("Al2CoCrFeNi", target="single-phase").table  # doctest: +SKIP
        >>> traj[["step", "formula", "p_model"]]  # doctest: +SKIP
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if not (0.0 < threshold <= 1.0):
            raise DesignError(f"threshold must be in (0, 1], got {threshold}")
        if max_steps < 0:
            raise DesignError(f"max_steps must be non-negative, got {max_steps}")
        x = self._vector(alloy, "the starting")
        path, zs, stopped = [x[0]], [], "step budget"
        for step in range(max_steps + 1):
            p = self.score(x, target)["p_model"].iloc[0]
            z = self._encode(x)
            zs.append(z.numpy()[0])
            if p >= threshold:
                stopped = "threshold reached"
                break
            if step == max_steps:
                break
            x_next = self.decode(z, target)
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
    def interpolate(self, start, end, target=1, steps: int = 11) -> DesignResult:
        """Decode a straight line in z between two alloys at a fixed class y.

        Each end is encoded at its predicted class (posterior mean); the
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
        >>> path = designer.interpolate("NbMoTaW", "HfNbTaTiZr", steps=5)  # doctest: +SKIP
        >>> path.composition_frame()  # doctest: +SKIP
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if steps < 2:
            raise DesignError(f"steps must be at least 2, got {steps}")
        ends = np.vstack([self._vector(start, "the start"), self._vector(end, "the end")])
        z_ends = self._encode(ends)
        t = torch.linspace(0.0, 1.0, steps)[:, None]
        z = (1 - t) * z_ends[0] + t * z_ends[1]
        x = self.decode(z, target)
        return self._trajectory("interpolate", x, z.numpy(), target, started,
                                {"start": canonical_formula(as_composition(start)),
                                 "end": canonical_formula(as_composition(end))}, t=t.numpy()[:, 0])
