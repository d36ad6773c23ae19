"""Inverse design with a trained model: screening, latent design, inversion, interpolation.

Four workflows, all methods of :class:`Designer` (from the mixins of
:mod:`~pyro_hea.design.screening`, :mod:`~pyro_hea.design.latent` and
:mod:`~pyro_hea.design.inversion`; this module holds the checks they share):

1. :meth:`Designer.screen` scores a list of alloys, or a generated space
   (equimolar k-element alloys or a non-equimolar grid from an element
   palette), by the model's probability of the target phase q(y | x).
2. :meth:`Designer.latent` draws z (by default from the aggregate posterior
   of the training alloys that meet the rules and are of the target class),
   decodes it with y = the target class over the allowed elements, turns the
   decoded composition into a realistic alloy, re-featurizes, re-classifies,
   deduplicates and accepts the valid, novel, in-domain decodes the model
   classifies as the target; it decodes the same z with the contrast class
   too, which shows what the phase label alone changes.
3. :meth:`Designer.invert` encodes an alloy (posterior mode), decodes it with the target
   class, re-featurizes, re-classifies, and repeats until q(target | x)
   passes a threshold or the step budget runs out.
4. :meth:`Designer.interpolate` walks a straight line in z between two
   alloys at a fixed y and decodes along the path.

Every candidate goes through the same checks (:meth:`Designer.score`):

- **validity** (:func:`~pyro_hea.design.space.check_validity`): finite,
  non-negative, sums to 100 at.%, number of principal elements (at least
  ``rules.min_percent`` at.% each) within the rules' bounds (4 to 8 by
  default: a high-entropy target);
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
>>> designer = Designer.from_run("runs/pei2020")  # needs a run written by pyro-hea train  # doctest: +SKIP
>>> result = designer.latent(n=1000, target="single-phase", seed=0)  # doctest: +SKIP
>>> print(format_summary(result.summary))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, element_table, featurize
from pyro_hea.design.inversion import InversionMixin
from pyro_hea.design.judge import Judge
from pyro_hea.design.latent import LatentMixin
from pyro_hea.design.novelty import NOVELTY_THRESHOLD, DescriptorDomain, NoveltyIndex
from pyro_hea.design.result import DesignError, DesignResult, format_summary, one_thread
from pyro_hea.design.screening import ScreeningMixin
from pyro_hea.design.space import CompositionRules, check_validity, formulas, principal_elements
from pyro_hea.infer.phase_model import PhaseModel
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["DesignError", "DesignResult", "Designer", "format_summary"]


class Designer(ScreeningMixin, LatentMixin, InversionMixin):
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
        training alloys (descriptor domain, latent sources). A training
        alloy's label is read only where the split says ``labelled``; an
        unlabelled one counts as its predicted class. All rows, labelled, if None.
    rules : CompositionRules, optional
        Realism and validity rules of candidates.
    novelty_threshold : float
        Composition distance (at.%) above which a candidate is novel.
    domain_margin : float
        Widening of the training descriptor range (fraction of its width).
    judge : Judge, optional
        A fitted judge; one is fit on ``df`` if not given.
    contrast_position : bool
        Fit the model's multi-phase class position first, where its config
        asks for one and it has none (:func:`~pyro_hea.design.contrast.ensure_contrast_position`).

    Examples
    --------
    >>> from pyro_hea import PhaseModel, load_dataset, paper_split
    >>> df = load_dataset("pei2020"); split = paper_split(df, seed=0)
    >>> model = PhaseModel.fit(df, split, steps=20, progress=False)  # trains a model: too slow for a doctest  # doctest: +SKIP
    >>> designer = Designer(model, df, split)  # doctest: +SKIP
    >>> designer.screen(["CoCrFeMnNi", "NbMoTaW"]).table[["formula", "p_model"]]  # doctest: +SKIP
    """

    def __init__(self, model: PhaseModel, df: pd.DataFrame, split: pd.Series | None = None,
                 rules: CompositionRules | None = None, novelty_threshold: float = NOVELTY_THRESHOLD,
                 domain_margin: float = 0.05, judge: Judge | None = None, judge_seed: int = 0,
                 contrast_position: bool = True):
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
        #: Per training row: is its label for the model to read (the split says ``labelled``)?
        self.train_labelled = np.ones(len(self.train_rows), dtype=bool) if split is None else \
            (pd.Series(split).reset_index(drop=True).to_numpy()[self.train_rows] == "labelled")
        self.novelty = NoveltyIndex(x_all, self.df["formula"].tolist())
        train_descriptors = self.df.loc[train, list(DESCRIPTOR_NAMES)].to_numpy(float)
        self.domain = DescriptorDomain(train_descriptors, domain_margin)
        if judge is not None and judge.n_classes != model.n_classes:
            raise DesignError(f"the judge has {judge.n_classes} classes but the model {model.n_classes}")
        self._judge, self._judge_seed = judge, judge_seed
        self._allowed = self.rules.allowed(self.vocabulary)
        if self._allowed.sum() < self.rules.min_elements:
            raise DesignError(
                f"the composition rules leave {int(self._allowed.sum())} element(s) of the model's vocabulary "
                f"for decoded alloys ({[el for el, ok in zip(self.vocabulary, self._allowed) if ok]}), fewer than "
                f"min_elements = {self.rules.min_elements}: widen the palette or lower min_elements"
            )
        _, pairs = element_table(self.vocabulary)
        self._missing_pairs = np.isnan(pairs).astype(float)
        if contrast_position:
            from pyro_hea.design.contrast import ensure_contrast_position

            ensure_contrast_position(model, self.df, split)

    @property
    def judge(self) -> Judge:
        """The independent judge; fitted on every labelled alloy of ``df`` when first needed, if none was given."""
        if self._judge is None:
            self._judge = Judge.fit(self.df, self.model.n_classes, seed=self._judge_seed)
        return self._judge

    @classmethod
    def from_run(cls, run, **kwargs) -> Designer:
        """A designer for a run directory (path or :class:`~pyro_hea.infer.run.Run`).

        Examples
        --------
        >>> Designer.from_run("runs/pei2020", novelty_threshold=5.0)  # needs a run written by pyro-hea train  # doctest: +SKIP
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
        >>> designer.class_index("single-phase")  # needs a Designer on a trained model  # doctest: +SKIP
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
    @one_thread
    def score(self, x_percent: np.ndarray, target=1, scorable: np.ndarray | None = None,
              names: Sequence[str] | None = None, novelty: bool = True, judged: bool = True) -> pd.DataFrame:
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
        judged : bool
            Ask the judge (else ``p_judge`` is NaN).

        Returns
        -------
        DataFrame
            Columns ``formula``, ``n_elements``, ``p_model`` (q(target | x)),
            ``p_judge``, ``uncertainty`` (entropy of q(y | x) in bits),
            ``agree``, ``valid``, ``novel``, ``novelty_distance`` (at.%),
            ``nearest_training_alloy``, ``in_domain``, ``scored``, ``flag``.

        Examples
        --------
        >>> x = np.zeros((1, len(designer.vocabulary)))  # needs a Designer on a trained model  # doctest: +SKIP
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
            broken = ~np.all(np.isfinite(p_model[rows]), axis=1)
            if broken.any():
                raise DesignError(
                    f"the model gives non-finite probabilities (NaN or infinite) for {int(broken.sum())} of "
                    f"{len(rows)} alloys, e.g. {formulas(xs[broken][:1], self.vocabulary)[0]}: its weights "
                    "are corrupt; retrain it"
                )
            if judged:
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
            "n_elements": principal_elements(np.where(np.isfinite(x), x, 0.0), self.rules),
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

    def _only_allowed(self, x: np.ndarray) -> np.ndarray:
        """Per row of ``x`` (at.% over the vocabulary): whether it holds allowed elements only (``rules.allowed``)."""
        return ~np.any((x > 0) & ~self._allowed, axis=1)

    def _invalid_reason(self, row: np.ndarray) -> str:
        if not np.all(np.isfinite(row)) or np.any(row < 0):
            return "invalid: negative or non-finite amounts"
        if abs(row.sum() - 100.0) > 1e-4:
            return f"invalid: amounts sum to {row.sum():.4g} at.%, not 100"
        count = int(principal_elements(row[None, :], self.rules)[0])
        if self.rules.min_elements <= count <= self.rules.max_elements and row.max() > self.rules.max_percent:
            return (f"invalid: {self.vocabulary[int(row.argmax())]} at {row.max():.4g} at.%, above "
                    f"max_percent {self.rules.max_percent:g}")
        return (f"invalid: {count} principal element(s) (>= {self.rules.min_percent:g} at.%), outside the "
                f"bounds [{self.rules.min_elements}, {self.rules.max_elements}]")

    def rates(self, table: pd.DataFrame, target, rows: np.ndarray | None = None) -> dict:
        """Counts and rates over ``rows`` (a bool mask) of a design table, all rows by default.

        ``judged_target`` is the share of scored rows whose judge picks the
        target class, ``model_target`` the same for the model, and
        ``judge_agreement`` the share of scored rows where both pick the same
        class. Rates are NaN when no row is scored.

        Examples
        --------
        >>> designer.rates(result.table, "single-phase")["judged_target"]  # needs a Designer on a trained model  # doctest: +SKIP
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

