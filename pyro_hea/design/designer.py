"""Inverse design with a trained model: screening, latent design, inversion, interpolation.

Four workflows, all methods of :class:`Designer`:

1. :meth:`Designer.screen` scores a list of alloys, or a generated space
   (equimolar k-element alloys or a non-equimolar grid from an element
   palette), by the model's probability of the target phase q(y | x).
2. :meth:`Designer.latent` draws z, decodes it with y = the target class,
   turns the decoded composition into a realistic alloy, re-featurizes,
   re-classifies and deduplicates; it decodes the same z with the contrast
   class too, which shows what the phase label alone changes.
3. :meth:`Designer.invert` encodes an alloy, decodes it with the target
   class, re-featurizes, re-classifies, and repeats until q(target | x)
   passes a threshold or the step budget runs out.
4. :meth:`Designer.interpolate` walks a straight line in z between two
   alloys at a fixed y and decodes along the path.

Every candidate goes through the same checks (:meth:`Designer.score`):

- **validity** (:func:`~pyro_hea.design.space.check_validity`): finite,
  non-negative, sums to 100 at.%, element count within the rules' bounds;
- **scoring**: ``p_model`` = q(y = target | x) of the model, and
  ``uncertainty``, the entropy of q(y | x) in bits (0 = certain, 1 = a coin
  flip for K = 2). It is the spread of one point-estimate classifier, not a
  model (epistemic) uncertainty; the judge, the domain flag and the novelty
  distance are the checks against over-confidence;
- **independent judge** (:class:`~pyro_hea.design.judge.Judge`): ``p_judge`` from
  gradient-boosted trees on the descriptors, fit on every labelled alloy and
  never used to generate; ``agree`` when both pick the same class;
- **novelty** (:mod:`pyro_hea.design.novelty`): the nearest alloy of the run's
  dataset (every split: a design that reproduces a known alloy is not new),
  its composition distance in at.% and the ``novel`` flag;
- **flags**: alloys with an element outside the model's vocabulary, or an
  element pair without descriptor data, are not scored (``scored`` False,
  probabilities NaN); alloys whose descriptors lie outside the training
  range are scored but flagged (``in_domain`` False). ``flag`` says why.

Examples
--------
>>> designer = Designer.from_run("runs/pei2020")  # doctest: +SKIP
>>> result = designer.latent(n=1000, target="single-phase", seed=0)  # doctest: +SKIP
>>> print(format_summary(result.summary))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from pyro_hea.infer.phase_model import PhaseModel
from pyro_hea.infer.checkpoint import atomic_write
from pyro_hea.data.composition import CompositionError, as_composition, canonical_formula
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, element_table, featurize
from pyro_hea.design.space import (
    DEFAULT_PALETTE,
    CompositionRules,
    check_validity,
    equimolar_space,
    formulas,
    grid_space,
    realize,
)
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.families import FAMILIES, family_matrix
from pyro_hea.design.judge import Judge
from pyro_hea.design.novelty import NOVELTY_THRESHOLD, DescriptorDomain, NoveltyIndex
from pyro_hea.model.priors import StandardNormal
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["DesignError", "DesignResult", "Designer", "format_summary"]


def _one_thread(method):
    """Run a workflow with one torch thread.

    The networks are small: on a small shared CPU, intra-op threads that
    wait on each other cost more than they bring (decoding 10,000 points is
    about 4 times faster on one thread here).
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return method(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


class DesignError(PyroHeaError):
    """Bad input to a design workflow."""


@dataclass
class DesignResult:
    """What a design workflow returns.

    Attributes
    ----------
    mode : str
        ``screen``, ``latent``, ``invert`` or ``interpolate``.
    table : DataFrame
        One row per candidate (or per step of a trajectory); see
        :meth:`Designer.score` for the columns.
    compositions : ndarray, shape (rows, elements)
        At.% of each row over ``vocabulary`` (NaN rows for unscored alloys
        outside it).
    vocabulary : tuple of str
        Elements of the columns of ``compositions``.
    summary : dict
        Counts and rates (see :func:`format_summary`).
    contrast : ndarray or None
        Latent mode: the compositions decoded at the same z with the contrast class.
    """

    mode: str
    table: pd.DataFrame
    compositions: np.ndarray
    vocabulary: tuple[str, ...]
    summary: dict = field(default_factory=dict)
    contrast: np.ndarray | None = None

    def composition_frame(self, contrast: bool = False) -> pd.DataFrame:
        """At.% by element (only elements that occur), one row per table row.

        Examples
        --------
        >>> result.composition_frame().columns.tolist()  # doctest: +SKIP
        ['Al', 'Cr', 'Fe', 'Ni']
        """
        x = self.contrast if contrast else self.compositions
        if x is None:
            raise DesignError(f"{self.mode} results have no contrast compositions")
        used = np.flatnonzero(np.nan_to_num(x).sum(axis=0) > 0)
        return pd.DataFrame(x[:, used], columns=[self.vocabulary[i] for i in used], index=self.table.index)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV, atomically."""
        atomic_write(path, lambda tmp: self.table.to_csv(tmp, index=False))


def format_summary(summary: dict) -> str:
    """The summary of a design run as a few readable lines.

    Examples
    --------
    >>> print(format_summary({"mode": "screen", "target": "single-phase", "generated": 2, "unique": 2,
    ...     "candidates": 2, "scored": 2, "valid": 2, "novel": 1, "judged_target": 1.0,
    ...     "judge_agreement": 0.5, "seconds": 0.01, "candidates_per_second": 200.0}))
    screen, target single-phase
    generated 2, unique 2, candidates 2, scored 2
    candidates: valid 2 (100.0%), novel 1 (50.0%), judged single-phase 100.0%, judge agreement 50.0%
    0.01 s, 200 candidates per second (generated)
    """
    n = max(summary["candidates"], 1)
    head = summary["mode"] + (f" ({summary['source']})" if "source" in summary else "")
    accepted = f" (accepted: p_model >= {summary['accept']:g})" if summary.get("accept") else ""
    lines = [
        f"{head}, target {summary['target']}",
        (f"generated {summary['generated']}, unique {summary['unique']}, "
         f"candidates {summary['candidates']}{accepted}, scored {summary['scored']}"),
        (f"candidates: valid {summary['valid']} ({100 * summary['valid'] / n:.1f}%), "
         f"novel {summary['novel']} ({100 * summary['novel'] / n:.1f}%), "
         f"judged {summary['target']} {_percent(summary['judged_target'])}, "
         f"judge agreement {_percent(summary['judge_agreement'])}"),
    ]
    if "all_decodes" in summary:
        a = summary["all_decodes"]
        lines.append(
            f"all {a['rows']} unique decodes: model says {summary['target']} {_percent(a['model_target'])}, "
            f"judged {summary['target']} {_percent(a['judged_target'])}, "
            f"judge agreement {_percent(a['judge_agreement'])}"
        )
    if "contrast" in summary:
        c = summary["contrast"]
        lines.append(
            f"same z, y={summary['target']} vs y={c['class']}: mean p_model {c['p_model_target']:.3f} vs "
            f"{c['p_model_contrast']:.3f}, mean p_judge {c['p_judge_target']:.3f} vs {c['p_judge_contrast']:.3f}, "
            f"compositions {c['mean_distance']:.1f} at.% apart"
        )
    if "stopped" in summary:
        lines.append(f"stopped: {summary['stopped']} after {summary['steps']} step(s)")
    lines.append(f"{summary['seconds']:.2f} s, "
                 f"{summary['candidates_per_second']:,.0f} candidates per second (generated)")
    return "\n".join(lines)


def _percent(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


class Designer:
    """Design alloys with a trained model, checked by an independent judge.

    Parameters
    ----------
    model : PhaseModel
        A trained model.
    df : DataFrame
        The dataset the model was trained on (from
        :func:`~pyro_hea.data.datasets.load_dataset`): its labelled alloys fit the
        judge, all its alloys are the novelty reference.
    split : Series, optional
        The run's split; its ``labelled`` and ``unlabelled`` rows are the
        training alloys (descriptor domain, latent sources). All rows if None.
    rules : CompositionRules, optional
        Realism and validity rules of candidates.
    novelty_threshold : float
        Composition distance (at.%) above which a candidate is novel.
    domain_margin : float
        Widening of the training descriptor range (fraction of its width).
    judge : Judge, optional
        A fitted judge; one is fit on ``df`` if not given.

    Examples
    --------
    >>> from pyro_hea import PhaseModel, load_dataset, paper_split
    >>> df = load_dataset("pei2020"); split = paper_split(df, seed=0)
    >>> model = PhaseModel.fit(df, split, steps=20, progress=False)  # doctest: +SKIP
    >>> designer = Designer(model, df, split)  # doctest: +SKIP
    >>> designer.screen(["CoCrFeMnNi", "NbMoTaW"]).table[["formula", "p_model"]]  # doctest: +SKIP
    """

    def __init__(self, model: PhaseModel, df: pd.DataFrame, split: pd.Series | None = None,
                 rules: CompositionRules | None = None, novelty_threshold: float = NOVELTY_THRESHOLD,
                 domain_margin: float = 0.05, judge: Judge | None = None, judge_seed: int = 0):
        if not (0.0 <= novelty_threshold < 100.0):
            raise DesignError(f"novelty_threshold must be in [0, 100) at.%, got {novelty_threshold}")
        self.model = model
        self.vocabulary = tuple(model.vocabulary)
        self.rules = rules or CompositionRules()
        self.novelty_threshold = float(novelty_threshold)
        self.df = df.reset_index(drop=True)
        x_all = model.tensors(self.df).x.numpy().astype(float)
        train = np.ones(len(self.df), dtype=bool) if split is None else \
            pd.Series(split).reset_index(drop=True).isin(["labelled", "unlabelled"]).to_numpy()
        if not train.any():
            raise DesignError("the split has no training rows ('labelled' or 'unlabelled')")
        self.train_rows = np.flatnonzero(train)
        self.novelty = NoveltyIndex(x_all, self.df["formula"].tolist())
        train_descriptors = self.df.loc[train, list(DESCRIPTOR_NAMES)].to_numpy(float)
        self.domain = DescriptorDomain(train_descriptors, domain_margin)
        self.judge = judge or Judge.fit(self.df, model.n_classes, seed=judge_seed)
        if self.judge.n_classes != model.n_classes:
            raise DesignError(f"the judge has {self.judge.n_classes} classes but the model {model.n_classes}")
        self._allowed = np.array([el not in self.rules.exclude for el in self.vocabulary])
        if not self._allowed.any():
            raise DesignError("the composition rules exclude every element of the vocabulary")
        _, pairs = element_table(self.vocabulary)
        self._missing_pairs = np.isnan(pairs).astype(float)

    @classmethod
    def from_run(cls, run, **kwargs) -> Designer:
        """A designer for a run directory (path or :class:`~pyro_hea.infer.run.Run`).

        Examples
        --------
        >>> Designer.from_run("runs/pei2020", novelty_threshold=5.0)  # doctest: +SKIP
        """
        from pyro_hea.infer.run import Run, load_run

        run = run if isinstance(run, Run) else load_run(run)
        return cls(run.model, run.df, run.split, **kwargs)

    # --------------------------------------------------------------- classes
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    def class_index(self, cls) -> int:
        """Index of a class given by index or name (e.g. ``"single-phase"``).

        Examples
        --------
        >>> designer.class_index("single-phase")  # doctest: +SKIP
        1
        """
        names = self.class_names
        if isinstance(cls, str):
            if cls in names:
                return names.index(cls)
            if cls.isdigit():
                cls = int(cls)
            else:
                raise DesignError(f"unknown class {cls!r}; the model's classes are {list(names)}")
        if isinstance(cls, (int, np.integer)) and 0 <= int(cls) < len(names):
            return int(cls)
        raise DesignError(f"class {cls!r} is not one of the model's classes {list(names)} (or 0..{len(names) - 1})")

    def default_contrast(self, target: int) -> int:
        """The multi-phase class, or single-phase (K=2) / the first class when the target is multi-phase."""
        multi = 0 if len(self.class_names) == 2 else len(self.class_names) - 1
        if target != multi:
            return multi
        return 1 if len(self.class_names) == 2 else 0

    # --------------------------------------------------------------- scoring
    @_one_thread
    def score(self, x_percent: np.ndarray, target=1, scorable: np.ndarray | None = None,
              names: Sequence[str] | None = None, novelty: bool = True) -> pd.DataFrame:
        """Check and score compositions over the model's vocabulary.

        Parameters
        ----------
        x_percent : ndarray, shape (alloys, elements)
            At.% over ``self.vocabulary``.
        target : int or str
            The target class.
        scorable : bool ndarray, optional
            Rows that may be scored (False rows get NaN probabilities).
        names : sequence of str, optional
            Formulas to use instead of computing them.
        novelty : bool
            Look up the nearest known alloy (else ``novelty_distance`` is NaN).

        Returns
        -------
        DataFrame
            Columns ``formula``, ``n_elements``, ``p_model`` (q(target | x)),
            ``p_judge``, ``uncertainty`` (entropy of q(y | x) in bits),
            ``agree``, ``valid``, ``novel``, ``novelty_distance`` (at.%),
            ``nearest_training_alloy``, ``in_domain``, ``scored``, ``flag``.

        Examples
        --------
        >>> x = np.zeros((1, len(designer.vocabulary)))  # doctest: +SKIP
        >>> x[0, designer.vocabulary.index("Fe")] = 100  # doctest: +SKIP
        >>> designer.score(x)["valid"].tolist()  # one element: invalid  # doctest: +SKIP
        [False]
        """
        target = self.class_index(target)
        x = np.asarray(x_percent, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.vocabulary):
            raise DesignError(f"compositions must have shape (alloys, {len(self.vocabulary)}), got {x.shape}")
        n = len(x)
        valid = check_validity(x, self.rules)
        flags = np.full(n, "", dtype=object)
        ok = np.ones(n, dtype=bool) if scorable is None else np.asarray(scorable, dtype=bool).copy()
        clean = np.nan_to_num(x)
        finite = np.all(np.isfinite(x), axis=1) & np.all(clean >= 0, axis=1) & (clean.sum(axis=1) > 0)
        ok &= finite
        flags[~finite] = "not a composition"
        present = (np.nan_to_num(x) > 0).astype(float)
        pair_missing = np.sum((present @ self._missing_pairs) * present, axis=1) > 0
        flags[ok & pair_missing] = "an element pair has no mixing-enthalpy data"
        ok &= ~pair_missing
        p_model = np.full((n, self.model.n_classes), np.nan)
        p_judge = np.full((n, self.model.n_classes), np.nan)
        distance = np.full(n, np.nan)
        nearest = np.full(n, "", dtype=object)
        in_domain = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(ok)
        if len(rows):
            xs = x[rows]
            raw = featurize(xs, self.vocabulary)
            tensors = AlloyTensors(
                x=torch.tensor(100.0 * xs / xs.sum(axis=1, keepdims=True), dtype=torch.float32),
                descriptors=torch.tensor(raw, dtype=torch.float32),
                features=torch.tensor(self.model.scaler.transform(raw), dtype=torch.float32),
                y=torch.full((len(rows),), -1, dtype=torch.long),
            )
            self.model.vae.eval()
            p_model[rows] = self.model.vae.predict_proba(tensors).numpy().astype(float)
            p_judge[rows] = self.judge.predict_proba(raw)
            if novelty:
                distance[rows], nearest[rows] = self.novelty.query(xs)
            in_domain[rows], reasons = self.domain.check(raw)
            flags[rows] = reasons
        for row in np.flatnonzero(~valid):
            flags[row] = "; ".join(filter(None, [self._invalid_reason(x[row]), flags[row]]))
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.nansum(np.where(p_model > 0, p_model * np.log2(p_model), 0.0), axis=1)
        entropy[~ok] = np.nan
        agree = ok & (np.nan_to_num(p_model).argmax(axis=1) == np.nan_to_num(p_judge).argmax(axis=1))
        table = pd.DataFrame({
            "formula": list(names) if names is not None else [""] * n,
            "n_elements": present.sum(axis=1).astype(int),
            "p_model": p_model[:, target],
            "p_judge": p_judge[:, target],
            "uncertainty": entropy,
            "agree": agree,
            "valid": valid,
            "novel": ok & (np.nan_to_num(distance) > self.novelty_threshold),
            "novelty_distance": distance,
            "nearest_training_alloy": nearest,
            "in_domain": in_domain,
            "scored": ok,
            "flag": flags,
        })
        if names is None:
            good = np.flatnonzero(finite)
            table.loc[good, "formula"] = formulas(x[good], self.vocabulary)
        table.attrs["p_model_all"] = p_model
        table.attrs["p_judge_all"] = p_judge
        return table

    def _invalid_reason(self, row: np.ndarray) -> str:
        if not np.all(np.isfinite(row)) or np.any(row < 0):
            return "invalid: negative or non-finite amounts"
        if abs(row.sum() - 100.0) > 1e-4:
            return f"invalid: amounts sum to {row.sum():.4g} at.%, not 100"
        count = int((row > 0).sum())
        return (f"invalid: {count} element(s), outside the bounds "
                f"[{self.rules.min_elements}, {self.rules.max_elements}]")

    def rates(self, table: pd.DataFrame, target, rows: np.ndarray | None = None) -> dict:
        """Counts and rates over ``rows`` (a bool mask) of a design table, all rows by default.

        ``judged_target`` is the share of scored rows whose judge picks the
        target class, ``model_target`` the same for the model, and
        ``judge_agreement`` the share of scored rows where both pick the same
        class. Rates are NaN when no row is scored.

        Examples
        --------
        >>> designer.rates(result.table, "single-phase")["judged_target"]  # doctest: +SKIP
        0.97
        """
        target = self.class_index(target)
        rows = np.ones(len(table), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        scored = table["scored"].to_numpy(bool) & rows
        p_model, p_judge = table.attrs.get("p_model_all"), table.attrs.get("p_judge_all")

        def share(mask) -> float:
            return float(np.mean(mask)) if scored.any() else float("nan")

        return {
            "rows": int(rows.sum()),
            "scored": int(scored.sum()),
            "valid": int(table["valid"].to_numpy(bool)[rows].sum()),
            "novel": int(table["novel"].to_numpy(bool)[rows].sum()),
            "in_domain": int(table["in_domain"].to_numpy(bool)[rows].sum()),
            "judged_target": share(np.nan_to_num(p_judge[scored]).argmax(axis=1) == target),
            "model_target": share(np.nan_to_num(p_model[scored]).argmax(axis=1) == target),
            "judge_agreement": share(table["agree"].to_numpy(bool)[scored]),
        }

    def summarize(self, table: pd.DataFrame, mode: str, target, generated: int, seconds: float,
                  candidates: np.ndarray | None = None) -> dict:
        """The summary of a workflow: :meth:`rates` over its candidates, and the throughput.

        ``candidates`` masks the rows the workflow delivers (latent mode: those
        the model accepts); ``generated`` counts the alloys drawn or read;
        ``unique`` the distinct compositions in the table.
        """
        target = self.class_index(target)
        out = {"mode": mode, "target": self.class_names[target], "generated": int(generated),
               "unique": int(table["formula"].nunique())}
        stats = self.rates(table, target, candidates)
        out["candidates"] = stats.pop("rows")
        out.update(stats)
        out["seconds"] = float(seconds)
        out["candidates_per_second"] = float(generated / seconds) if seconds > 0 else float("inf")
        return out

    # ------------------------------------------------------------- screening
    @_one_thread
    def screen(self, alloys: Sequence | None = None, target=1, palette: Sequence[str] = DEFAULT_PALETTE,
               k: int = 5, grid_step: float | None = None, min_percent: float = 5.0,
               max_percent: float = 35.0) -> DesignResult:
        """Score a list of alloys, or a generated space, by q(target | x).

        Parameters
        ----------
        alloys : sequence of formulas or compositions, optional
            What to score. If None, a space generated from ``palette``:
            every equimolar ``k``-element alloy, or with ``grid_step`` every
            k-element alloy on that at.% grid with amounts in
            ``[min_percent, max_percent]``.
        target : int or str
            The target class.

        Returns
        -------
        DesignResult
            Rows sorted by ``p_model``, highest first; invalid, out-of-domain
            and unscored rows come last. ``input_index`` gives the input order.

        Examples
        --------
        >>> designer.screen(["CoCrFeMnNi", "CoCrFeMnNiB"]).table["scored"].tolist()  # doctest: +SKIP
        [True, False]
        """
        started = time.perf_counter()
        target = self.class_index(target)
        if alloys is None:
            if grid_step is None:
                space, elements = equimolar_space(palette, k)
            else:
                space, elements = grid_space(palette, k, grid_step, min_percent, max_percent)
            x, outside = self._onto_vocabulary(space, elements)
            names = None
        else:
            if isinstance(alloys, (str, dict)):
                alloys = [alloys]
            if len(alloys) == 0:
                raise DesignError("no alloys to screen")
            comps = []
            for i, alloy in enumerate(alloys):
                try:
                    comps.append(as_composition(alloy))
                except CompositionError as err:
                    raise DesignError(f"alloy {i} ({alloy!r}) cannot be read: {err}") from None
            elements = sorted({el for c in comps for el in c})
            space = np.array([[100.0 * c.get(el, 0.0) for el in elements] for c in comps])
            x, outside = self._onto_vocabulary(space, elements)
            names = [canonical_formula(c) for c in comps]
        table = self.score(x, target, scorable=~outside.any(axis=1), names=names)
        if outside.any():
            oov = np.flatnonzero(outside.any(axis=1))
            extra = [e for e in elements if e not in self.vocabulary]
            for row in oov:
                missing = [extra[j] for j in np.flatnonzero(outside[row])]
                valid = bool(check_validity(space[row:row + 1], self.rules)[0])
                table.loc[row, "flag"] = "; ".join(filter(None, [
                    f"element(s) {missing} outside the model's vocabulary",
                    "" if valid else self._invalid_reason(space[row])]))
                table.loc[row, "valid"] = valid
                table.loc[row, "n_elements"] = int((space[row] > 0).sum())
            if names is None:
                table.loc[oov, "formula"] = formulas(space[oov], elements)
        x = np.where(outside.any(axis=1, keepdims=True), np.nan, x)
        table.insert(0, "input_index", np.arange(len(table)))
        good = (table["scored"] & table["in_domain"] & table["valid"]).to_numpy()
        key = np.where(good, table["p_model"].fillna(-1), -2.0 + table["p_model"].fillna(-1) / 10)
        order = np.argsort(-key, kind="stable")
        attrs = dict(table.attrs)
        table = table.iloc[order].reset_index(drop=True)
        table.attrs.update({k: v[order] for k, v in attrs.items()})
        seconds = time.perf_counter() - started
        summary = self.summarize(table, "screen", target, len(table), seconds)
        summary["flagged"] = int((~good[order]).sum())
        return DesignResult("screen", table, x[order], self.vocabulary, summary)

    def _onto_vocabulary(self, space: np.ndarray, elements: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Columns of ``space`` over ``elements`` moved onto the vocabulary, and the outside ones."""
        index = {el: i for i, el in enumerate(self.vocabulary)}
        inside = [j for j, el in enumerate(elements) if el in index]
        outside_cols = [j for j, el in enumerate(elements) if el not in index]
        x = np.zeros((len(space), len(self.vocabulary)))
        x[:, [index[elements[j]] for j in inside]] = space[:, inside]
        return x, space[:, outside_cols] > 0

    # --------------------------------------------------------- latent design
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

    @_one_thread
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

    @_one_thread
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

    @_one_thread
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

    @_one_thread
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

    # ----------------------------------------------------- iterative inversion
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

    @_one_thread
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
    @_one_thread
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
