"""Alloys as tensors: what the Pyro model and guide take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyro
import torch

from pyro_hea.data.datasets import PHASES, composition_matrix
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES, featurize
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.splits import DescriptorScaler

__all__ = ["AlloyTensors", "CandidateTensors", "alloy_plate", "labels_from_frame"]


def labels_from_frame(df: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Class index per alloy, -1 where unlabelled.

    K=2: 0 multi-phase, 1 single-phase. K=4: BCC, FCC, HCP, multi
    (:data:`~pyro_hea.data.datasets.PHASES`).

    Examples
    --------
    >>> labels_from_frame(pd.DataFrame({"single_phase": [1, 0, None]}), 2).tolist()
    [1, 0, -1]
    """
    column = {2: "single_phase", 4: "phase"}.get(n_classes)
    if column is not None and column not in df.columns:
        raise PyroHeaError(f"the table has no {column!r} column, which holds the labels of K = {n_classes} classes")
    if n_classes == 2:
        col = df["single_phase"]
        return np.where(col.isna(), -1, col.fillna(-1).astype(int)).astype(int)
    if n_classes == 4:
        col = df["phase"].astype("string")
        lookup = {p: i for i, p in enumerate(PHASES)}
        return np.array([-1 if pd.isna(p) else lookup[p] for p in col], dtype=int)
    raise PyroHeaError(f"n_classes must be 2 (single vs multi-phase) or 4 (BCC/FCC/HCP/multi), got {n_classes}")


@dataclass
class AlloyTensors:
    """A batch of alloys.

    Attributes
    ----------
    x : Tensor (n, elements)
        Composition in at.% over the vocabulary (rows sum to 100).
    descriptors : Tensor (n, 8)
        The physical descriptors, in their units.
    features : Tensor (n, 8)
        The descriptors standardized with the training scaler.
    y : Tensor (n,) of long
        Class index, -1 where the label is unknown or hidden.
    population : int, optional
        How many alloys this batch stands for, when it is a mini-batch drawn
        from a larger set; the model's plates scale its log-density by
        ``population / n`` (see :meth:`as_minibatch`). ``None``: the batch is
        the whole set.
    """

    x: torch.Tensor
    descriptors: torch.Tensor
    features: torch.Tensor
    y: torch.Tensor
    population: int | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index) -> "AlloyTensors":
        if isinstance(index, np.ndarray):
            index = torch.as_tensor(index)
        return AlloyTensors(self.x[index], self.descriptors[index], self.features[index], self.y[index])

    @property
    def size(self) -> int:
        """The number of alloys the batch stands for: ``population``, else its length."""
        return len(self) if self.population is None else self.population

    def as_minibatch(self, population: int) -> "AlloyTensors":
        """The same alloys, marked as a mini-batch of a set of ``population`` alloys.

        Examples
        --------
        >>> s = DescriptorScaler(np.zeros(8), np.ones(8))
        >>> batch = AlloyTensors.from_compositions(np.array([[50.0, 50.0]]), ["Fe", "Ni"], s)
        >>> batch.as_minibatch(1000).size
        1000
        """
        if population < len(self):
            raise PyroHeaError(f"a mini-batch of {len(self)} alloys cannot stand for only {population}")
        return AlloyTensors(self.x, self.descriptors, self.features, self.y, int(population))

    @classmethod
    def concat(cls, parts: Sequence["AlloyTensors"]) -> "AlloyTensors":
        """The alloys of ``parts`` one after the other (a whole set, no population).

        Examples
        --------
        >>> s = DescriptorScaler(np.zeros(8), np.ones(8))
        >>> a = AlloyTensors.from_compositions(np.array([[50.0, 50.0]]), ["Fe", "Ni"], s)
        >>> len(AlloyTensors.concat([a, a]))
        2
        """
        return cls(*(torch.cat([getattr(p, name) for p in parts]) for name in ("x", "descriptors", "features", "y")))

    @property
    def labelled(self) -> torch.Tensor:
        """Boolean mask of the alloys with a label."""
        return self.y >= 0

    def hide_labels(self) -> "AlloyTensors":
        """A copy with every label set unknown."""
        return AlloyTensors(self.x, self.descriptors, self.features, torch.full_like(self.y, -1), self.population)

    @classmethod
    def from_compositions(
        cls, x_percent: np.ndarray, vocabulary: Sequence[str], scaler: DescriptorScaler,
        y: np.ndarray | None = None,
    ) -> "AlloyTensors":
        """Featurize at.% compositions over ``vocabulary`` and standardize.

        Examples
        --------
        >>> s = DescriptorScaler(np.zeros(8), np.ones(8))
        >>> AlloyTensors.from_compositions(np.array([[50.0, 50.0]]), ["Fe", "Ni"], s).x.shape
        torch.Size([1, 2])
        """
        x_percent = np.asarray(x_percent, dtype=float)
        raw = featurize(x_percent, vocabulary)
        x_percent = 100.0 * x_percent / x_percent.sum(axis=1, keepdims=True)
        y = np.full(len(x_percent), -1) if y is None else np.asarray(y)
        return cls(
            x=torch.tensor(x_percent, dtype=torch.float32),
            descriptors=torch.tensor(raw, dtype=torch.float32),
            features=torch.tensor(scaler.transform(raw), dtype=torch.float32),
            y=torch.tensor(y, dtype=torch.long),
        )

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, vocabulary: Sequence[str], scaler: DescriptorScaler, n_classes: int = 2,
    ) -> "AlloyTensors":
        """Tensors for the rows of a dataset table (see :func:`~pyro_hea.data.datasets.load_dataset`)."""
        missing = [c for c in DESCRIPTOR_NAMES if c not in df.columns]
        if missing:
            raise PyroHeaError(f"the table lacks descriptor column(s) {missing}")
        raw = df[list(DESCRIPTOR_NAMES)].to_numpy(dtype=float)
        if not np.all(np.isfinite(raw)):
            raise PyroHeaError("the table has NaN or infinite descriptors")
        return cls(
            x=torch.tensor(composition_matrix(df, vocabulary), dtype=torch.float32),
            descriptors=torch.tensor(raw, dtype=torch.float32),
            features=torch.tensor(scaler.transform(raw), dtype=torch.float32),
            y=torch.tensor(labels_from_frame(df, n_classes), dtype=torch.long),
        )


class CandidateTensors:
    """Unlabelled candidates as :class:`AlloyTensors`, built batch by batch.

    Wraps anything with ``len()``, a ``vocabulary`` and ``take(indices)``
    (at.% rows over that vocabulary), such as a candidate pool; the rows of
    a batch are featurized and standardized when the batch is asked for, so
    the whole pool is never one tensor.

    Examples
    --------
    >>> class Two:
    ...     vocabulary = ("Fe", "Ni")
    ...     def __len__(self): return 2
    ...     def take(self, idx): return np.array([[50.0, 50.0], [25.0, 75.0]])[idx]
    >>> pool = CandidateTensors(Two(), ["Fe", "Ni"], DescriptorScaler(np.zeros(8), np.ones(8)))
    >>> pool.tensors(np.array([1])).x.tolist(), pool.tensors(np.array([1])).y.tolist()
    ([[25.0, 75.0]], [-1])
    """

    def __init__(self, candidates, vocabulary: Sequence[str], scaler: DescriptorScaler):
        given = tuple(getattr(candidates, "vocabulary", ()))
        if given != tuple(vocabulary):
            raise PyroHeaError(f"the candidates are over elements {list(given)[:6]}..., not the model's "
                               f"vocabulary of {len(vocabulary)} elements; build them with the model's vocabulary")
        self.candidates, self.vocabulary, self.scaler = candidates, tuple(vocabulary), scaler

    def __len__(self) -> int:
        return len(self.candidates)

    def tensors(self, indices: np.ndarray) -> AlloyTensors:
        """The candidates at ``indices`` (labels -1)."""
        x = np.asarray(self.candidates.take(np.asarray(indices, dtype=np.int64)), dtype=float)
        if x.shape != (len(indices), len(self.vocabulary)):
            raise PyroHeaError(f"the candidates gave rows of shape {x.shape}, expected "
                               f"({len(indices)}, {len(self.vocabulary)})")
        return AlloyTensors.from_compositions(x, self.vocabulary, self.scaler)


def alloy_plate(name: str, alloys: AlloyTensors) -> pyro.plate:
    """The plate over a batch of alloys.

    A mini-batch of n alloys drawn from a set of N (``alloys.population``)
    enters the ELBO scaled by N / n, so that its expectation over batches is
    the full-batch ELBO.

    Examples
    --------
    >>> import numpy as np
    >>> from pyro_hea.data.splits import DescriptorScaler
    >>> a = AlloyTensors.from_compositions(np.array([[50., 50.]]), ["Fe", "Ni"],
    ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
    >>> alloy_plate("alloys", a.as_minibatch(10)).size
    10
    """
    if alloys.population is None:
        return pyro.plate(name, len(alloys))
    return pyro.plate(name, alloys.population, subsample=torch.arange(len(alloys)))
