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
from pyro_hea.design.space import realize
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["MOVES", "PROPOSALS", "REFINE_STEPS", "InversionMixin"]

#: L-BFGS iterations that refine an encoding to the posterior mode (as
#: :meth:`~pyro_hea.model.vae.PhaseVAE.reconstruct` does).
REFINE_STEPS = 50

#: The most steps of an inversion or points of an interpolation path.
MAX_STEPS = 1000

#: Latent draws per step of the inversion's search (0: the plain iteration), and the most allowed.
PROPOSALS = 64
MAX_PROPOSALS = 100_000

#: The least rise of q(target | x) a move of the search must bring (below it, float noise).
MIN_GAIN = 1e-6

#: The search's moves from the current alloy x towards each decode d: x + t (d - x).
MOVES = (0.25, 0.5, 0.75, 1.0)


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

    def _encode(self, x: np.ndarray, refine_steps: int = REFINE_STEPS, with_scale: bool = False):
        """z of compositions, each at its predicted class: the posterior mode (see below).

        The amortized encoder's mean is refined by ``refine_steps`` L-BFGS
        iterations to the mode of p(z | x, y)
        (:meth:`~pyro_hea.model.vae.PhaseVAE.posterior_mode`), as the model's
        own reconstruction does; ``refine_steps=0`` keeps the encoder's mean.
        ``with_scale`` also returns the encoder's scale of q(z | x, y).
        """
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, (int, np.integer)) or refine_steps < 0:
            raise DesignError(f"refine_steps must be a non-negative whole number, got {refine_steps!r}")
        tensors = AlloyTensors.from_compositions(x, self.vocabulary, self.model.scaler)
        vae = self.model.vae
        vae.eval()
        y = vae.predict_proba(tensors).argmax(-1)
        loc, scale = vae.encode(tensors, y)
        if refine_steps and hasattr(vae, "posterior_mode"):
            loc = vae.posterior_mode(tensors, y, steps=int(refine_steps)).detach()
        return (loc, scale) if with_scale else loc

    @one_thread
    def invert(self, alloy, target=1, threshold: float = 0.9, max_steps: int = 20,
               refine_steps: int = REFINE_STEPS, proposals: int = PROPOSALS, spread: float = 1.0,
               seed: int = 0) -> DesignResult:
        """Iterative inversion: a search for an alloy of the target class, inside the composition rules.

        Step 0 is the starting alloy. At each step the current alloy x is
        encoded at its predicted class (the posterior mode of z, refined from
        the encoder's mean by ``refine_steps`` L-BFGS iterations). Then:

        - with ``proposals`` > 0 (default 64), the *search*: the mode and
          ``proposals`` draws z + ``spread`` s eps (s the encoder's scale) are
          decoded with y = target, and each decode d gives the moves
          x + t (d - x), t in :data:`MOVES`, realized. Of the moves that are
          valid under the composition rules (by default at least 4 principal
          elements, only allowed elements: the palette, less ``exclude`` and
          the radioactive ones) and inside the training descriptor range, the nearest
          to the start with ``p_model`` >= ``threshold`` is taken; if none
          reaches it, the one with the highest ``p_model``, if that is higher
          than the current alloy's (by :data:`MIN_GAIN`). So the trajectory never leaves the rules
          and q(target | x) rises at every step;
        - with ``proposals=0``, the plain iteration: the mode is decoded with
          y = target and realized, valid or not (it can drift out of the rules).

        It stops when an alloy that meets the rules (allowed elements only,
        inside the training range) has ``p_model`` at or above ``threshold``,
        when no move improves (search), when the composition stops changing
        (plain iteration), or after ``max_steps`` steps. A start that breaks
        the rules never ends the search: any move that meets them is taken
        over it. Only the model's classifier steers; the judge is not
        consulted.

        Returns
        -------
        DesignResult
            ``table`` is the trajectory: ``step``, the columns of
            :meth:`score` and ``z_1`` .. ``z_d`` (the encoding of the step's
            alloy). ``summary["stopped"]`` says why it ended and
            ``summary["end"]`` gives the last alloy's formula, whether it
            meets the rules (``valid``: the element counts, allowed elements
            only, inside the training range), ``p_model`` and ``p_judge``.

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
        if isinstance(proposals, bool) or not isinstance(proposals, (int, np.integer)) \
                or not (0 <= proposals <= MAX_PROPOSALS):
            raise DesignError(f"proposals must be a whole number in [0, {MAX_PROPOSALS}], got {proposals!r}")
        if isinstance(spread, bool) or not isinstance(spread, (int, float, np.integer, np.floating)) \
                or not np.isfinite(spread) or spread < 0:
            raise DesignError(f"spread must be a finite non-negative scale factor, got {spread!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (0 <= seed < 2**63):
            raise DesignError(f"seed must be a whole number in [0, 2**63), got {seed!r}")
        x = self._vector(alloy, "the starting")
        start = x[0]
        path, zs, stopped = [x[0]], [], "step budget"
        for step in range(max_steps + 1):
            scored = self.score(x, target, novelty=False)
            # only an alloy that meets the rules (palette included) inside the training range can end
            # the search; any move that does improves on one that does not
            p = scored["p_model"].iloc[0] if self._meets_rules(x, scored)[0] else float("nan")
            z, scale = self._encode(x, refine_steps, with_scale=True)
            zs.append(z.numpy()[0])
            if p >= threshold:
                stopped = "threshold reached"
                break
            if step == max_steps:
                break
            if proposals:
                x_next, why = self._best_move(x, z, scale, start, p, target, threshold, proposals, spread,
                                              np.random.SeedSequence([int(seed), step]))
                if x_next is None:
                    stopped = why
                    break
            else:
                x_next = self.decode(z, target)
                if not np.all(np.isfinite(x_next)):
                    stopped = "the decode has no allowed element"
                    break
                if np.allclose(x_next, x):
                    stopped = "fixed point (the composition stopped changing)"
                    break
            x = x_next
            path.append(x[0])
        extra = {"stopped": stopped, "threshold": threshold, "proposals": int(proposals)}
        if proposals:
            extra.update(spread=float(spread), seed=int(seed))
        result = self._trajectory("invert", np.array(path), np.array(zs), target, started, extra)
        last = result.table.iloc[-1]
        result.summary["end"] = {"formula": last["formula"],
                                 "valid": bool(self._meets_rules(x, result.table.iloc[-1:])[0]),
                                 "p_model": float(last["p_model"]), "p_judge": float(last["p_judge"])}
        return result

    def _meets_rules(self, x: np.ndarray, table) -> np.ndarray:
        """Per row of ``x``, scored as ``table``: valid, scored, inside the training range, allowed elements only."""
        return (table["valid"] & table["scored"] & table["in_domain"]).to_numpy(bool) & self._only_allowed(x)

    def _best_move(self, x, z, scale, start, p, target, threshold, proposals, spread, seeds):
        """The search's next alloy (1, elements), or None and why the search stops."""
        generator = torch.Generator().manual_seed(int(seeds.generate_state(1, np.uint64)[0] % 2**63))
        noise = torch.randn((proposals, z.shape[1]), generator=generator)
        decodes = self.decode(torch.cat([z, z + spread * scale * noise]), target, realistic=False)
        decodes = decodes[np.all(np.isfinite(decodes), axis=1)]
        if not len(decodes):
            return None, "the decode has no allowed element"
        moves = realize(np.concatenate([x + t * (decodes - x) for t in MOVES]), self.rules)
        table = self.score(moves, target, novelty=False)
        ok = self._meets_rules(moves, table)  # a start's off-palette element must go
        if not ok.any():
            return None, "no move meets the composition rules inside the training range"
        q = np.where(ok, table["p_model"].to_numpy(), -np.inf)
        reached = np.flatnonzero(q >= threshold)
        if len(reached):
            distance = np.abs(moves[reached] - start).sum(axis=1)
            return moves[reached[np.argmin(distance)]][None, :], ""
        best = int(np.argmax(q))
        if not (np.isnan(p) or q[best] > p + MIN_GAIN):
            return None, "local optimum (no move raises q(target | x))"
        return moves[best][None, :], ""

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
