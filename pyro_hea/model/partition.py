"""Partitions of descriptor space by fixed trees, and a linear model on their leaves.

q(y | x) of the default model adds ``sum_t w[leaf_t(f)]`` to its logits, over
1,000 random oblivious trees (:class:`RandomPartitionEncoding`) and over the
500 trees of a random forest fitted on the labelled alloys
(:class:`ForestPartitionEncoding`). The trees never change in training, and a
full batch passes the same descriptors in every step, so the leaves and the
(leaf x alloy) incidence matrix that carries the gradient to ``w`` are
computed once per descriptor tensor and kept (:meth:`LeafPartition.leaf_sum`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["LeafPartition", "RandomPartitionEncoding", "ForestPartitionEncoding"]

#: How many descriptor tensors a partition keeps the leaves of, while training.
CACHE_SIZE = 4
#: Rows per block when leaves are computed outside training (screening millions of alloys): the
#: (rows x trees x depth) intermediates of one block stay near 40 MB instead of growing with the input.
BLOCK_ROWS = 2048
#: Forests up to this depth find their leaves from a table of the 2^(2^d - 1) patterns of node bits.
MAX_LOOKUP_DEPTH = 4
#: The threshold of a split that sends every finite descriptor left (finite, so that checkpoints hold it).
NEVER = torch.finfo(torch.float32).max


def _heap_leaf(code: int, depth: int) -> int:
    """The leaf of a complete heap-ordered tree that node bits ``code`` (bit h: node h goes right) lead to."""
    node = 0
    for _ in range(depth):
        node = 2 * node + 1 + ((code >> node) & 1)
    return node - (2 ** depth - 1)


class _Kept(list):
    """The kept leaves: a list that copies (``copy.deepcopy``, pickling) as empty."""

    def __deepcopy__(self, memo) -> "_Kept":
        return _Kept()

    def __reduce__(self):
        return _Kept, ()


class _LeafSum(torch.autograd.Function):
    """``sum_t w[leaves[..., t]]``; the gradient to ``w`` is one sparse product, ``incidence @ grad``.

    The forward pass is the embedding lookup and sum that it replaces; the
    backward pass adds each row's gradient into its leaves in row order, as
    the embedding's own backward pass does, without its pass over all the
    leaves of every tree for each block of weights.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, leaves: torch.Tensor, incidence: torch.Tensor) -> torch.Tensor:
        ctx.incidence = incidence
        return nn.functional.embedding(leaves, weight).sum(-2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.incidence @ grad.contiguous(), None, None


class LeafPartition(nn.Module):
    """T fixed trees of depth d on the descriptors, as leaf indices, and a linear model on the leaves.

    A subclass places the splits (buffers ``split_feature`` and ``thresholds``)
    and maps a block of descriptors to leaves in ``_leaves``; this class
    computes leaves in blocks (:meth:`forward`) and keeps the leaves of a
    training tensor between steps (:meth:`leaf_sum`).
    """

    def __init__(self, n_trees: int, depth: int):
        super().__init__()
        self.n_trees, self.depth = n_trees, depth
        self.register_buffer("offsets", torch.arange(n_trees) * 2 ** depth, persistent=False)  # tree t's first leaf
        self._cache = _Kept()
        self._tables = _Kept()

    @property
    def n_leaves(self) -> int:
        return self.n_trees * 2 ** self.depth

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Leaf index of each tree, shape (..., T), each in [0, n_leaves); computed in blocks of rows."""
        flat = f.reshape(-1, f.shape[-1])  # split() gives one empty block for no rows
        return torch.cat([self._leaves(block) for block in flat.split(BLOCK_ROWS)]).reshape(*f.shape[:-1], self.n_trees)

    def _leaves(self, f: torch.Tensor) -> torch.Tensor:
        """Leaf indices (n, T) of the rows of an (n, n_features) block."""
        raise NotImplementedError

    def _split_codes(self, f: torch.Tensor) -> torch.Tensor:
        """``sum_s 2^s [f[split_feature[t, s]] > thresholds[t, s]]`` per row and tree, (n, T) int16.

        Computed per descriptor, not per split: the splits on descriptor j cut its axis into
        intervals, ``searchsorted`` finds each row's interval, and a table holds every tree's
        code contribution from that interval. The same integers as comparing every split.
        """
        code = torch.zeros(len(f), self.n_trees, dtype=torch.int16, device=f.device)  # codes < 2^15
        for j, (edges, table) in self._code_tables(f.dtype).items():
            code += table.index_select(0, torch.searchsorted(edges, f[:, j].contiguous()))
        return code

    def _code_tables(self, dtype: torch.dtype) -> dict:
        """Per split descriptor j: its sorted thresholds, and the (n_j + 1, T) code contributions."""
        key = (self.thresholds._version, self.split_feature._version, dtype)
        if self._tables and self._tables[0][0] is self.thresholds and self._tables[0][1] is self.split_feature \
                and self._tables[0][2] == key:
            return self._tables[0][3]
        n_splits = self.split_feature.shape[1]
        feature, threshold = self.split_feature.reshape(-1), self.thresholds.reshape(-1).to(dtype)
        tree = torch.arange(self.n_trees, device=feature.device).repeat_interleave(n_splits)
        bit = (2 ** torch.arange(n_splits, device=feature.device, dtype=torch.int16)).repeat(self.n_trees)
        tables = {}
        for j in feature.unique().tolist():
            on_j = feature == j
            edges, order = threshold[on_j].sort()
            steps = torch.zeros(len(edges) + 1, self.n_trees, dtype=torch.int16, device=feature.device)
            steps[torch.arange(1, len(edges) + 1, device=feature.device), tree[on_j][order]] = bit[on_j][order]
            tables[j] = (edges.contiguous(), steps.cumsum(0, dtype=torch.int16))
        self._tables[:] = [(self.thresholds, self.split_feature, key, tables)]
        return tables

    def leaf_sum(self, f: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``sum_t weight[leaf_t(f)]``, shape (..., weight.shape[-1]), for leaf weights (n_leaves, K).

        While training (grad on, module in training mode) on an (n, n_features)
        tensor, the leaves and the incidence matrix of ``f`` are kept for the
        next call with the same, unmodified tensor.

        Examples
        --------
        >>> part = RandomPartitionEncoding(n_features=2, n_trees=3, depth=1)
        >>> part.fit_thresholds(torch.tensor([[0., 0.], [1., 1.]]))
        >>> part.leaf_sum(torch.zeros(4, 2), torch.ones(part.n_leaves, 2)).shape
        torch.Size([4, 2])
        """
        if not (self.training and torch.is_grad_enabled() and f.ndim == 2 and not f.is_inference()):
            flat = f.reshape(-1, f.shape[-1])
            sums = [nn.functional.embedding(self._leaves(block), weight).sum(-2) for block in flat.split(BLOCK_ROWS)]
            return torch.cat(sums).reshape(*f.shape[:-1], weight.shape[-1])
        leaves, incidence = self._cached(f)
        return _LeafSum.apply(weight, leaves, incidence)

    def _cached(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The leaves of ``f`` and its (n_leaves, n) incidence matrix, computed once per tensor and version."""
        key = (f._version, self.thresholds._version, self.split_feature._version)
        for entry in self._cache:  # the entry holds f itself, so its id cannot be reused while kept
            if entry[0] is f and entry[1] is self.thresholds and entry[2] is self.split_feature and entry[3] == key:
                return entry[4], entry[5]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            leaves = self(f)
            flat = leaves.reshape(-1)  # alloy n, tree t at n * T + t; a stable sort keeps each leaf's alloys in order
            alloys = torch.sort(flat, stable=True).indices // self.n_trees
            rows = torch.zeros(self.n_leaves + 1, dtype=torch.int64, device=f.device)
            rows[1:] = torch.bincount(flat, minlength=self.n_leaves).cumsum(0)
            incidence = torch.sparse_csr_tensor(rows, alloys, torch.ones(len(flat), dtype=f.dtype, device=f.device),
                                                (self.n_leaves, len(f)), check_invariants=False)
        self._cache.insert(0, (f, self.thresholds, self.split_feature, key, leaves, incidence))
        del self._cache[CACHE_SIZE:]
        return leaves, incidence


class RandomPartitionEncoding(LeafPartition):
    """Each alloy as the leaves it falls in of T random oblivious trees of depth d on the descriptors.

    Tree t splits, at level l, descriptor ``split_feature[t, l]`` at the
    ``split_level[t, l]`` quantile of the training descriptors (labelled and
    unlabelled alike; no label is read), so the partition follows where the
    alloys are. Both are drawn at random once; the thresholds are set by
    :meth:`fit_thresholds`. A linear model on the leaves is an average of
    piecewise-constant functions over many random axis-aligned partitions,
    the kind of function a random forest fits. Feature, level and
    threshold are buffers, saved with the weights.

    Examples
    --------
    >>> part = RandomPartitionEncoding(n_features=3, n_trees=4, depth=2)
    >>> part.fit_thresholds(torch.randn(50, 3))
    >>> leaves = part(torch.zeros(5, 3))
    >>> leaves.shape, bool(((leaves >= 0) & (leaves < part.n_leaves)).all())
    (torch.Size([5, 4]), True)
    """

    def __init__(self, n_features: int, n_trees: int, depth: int):
        super().__init__(n_trees, depth)
        self.register_buffer("split_feature", torch.randint(0, n_features, (n_trees, depth)))
        self.register_buffer("split_level", 0.05 + 0.9 * torch.rand(n_trees, depth))
        self.register_buffer("thresholds", torch.zeros(n_trees, depth))

    @torch.no_grad()
    def fit_thresholds(self, features: torch.Tensor) -> None:
        """Set each split at its quantile of the training ``features`` (n, n_features)."""
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"fit_thresholds needs an (n >= 2, n_features) tensor, got {tuple(features.shape)}")
        ordered = features.sort(dim=0).values[:, self.split_feature]  # (n, T, d)
        position = self.split_level * (len(features) - 1)
        lo = position.floor().long()
        hi = (lo + 1).clamp_max(len(features) - 1)
        take = lambda idx: ordered.gather(0, idx[None]).squeeze(0)  # noqa: E731
        self.thresholds.copy_(take(lo) + (position - lo) * (take(hi) - take(lo)))
        self._cache.clear()

    def _leaves(self, f: torch.Tensor) -> torch.Tensor:
        return self._split_codes(f).long() + self.offsets  # bit l of tree t's leaf: split l of tree t


class ForestPartitionEncoding(LeafPartition):
    """Each alloy as the leaves it falls in of a random forest of T trees of depth <= d, fit on the labelled alloys.

    A supervised partition: where :class:`RandomPartitionEncoding` places its
    splits without labels, these are the splits of a scikit-learn
    ``RandomForestClassifier`` (bootstrap rows, sqrt(n_features) descriptors
    per split, ``max_depth=d``) fitted by :meth:`fit_forest` on the labelled
    training alloys. Each tree is kept as a complete binary tree in heap
    order: node h splits descriptor ``split_feature[t, h]`` at
    ``thresholds[t, h]`` (right when greater) and its children are 2h + 1 and
    2h + 2. A leaf of the forest above depth d gets splits at ``NEVER`` (the
    largest float32) below it, so its alloys all reach one leaf. Before the fit
    every threshold is ``NEVER`` and every alloy is in leaf 0 of each tree.

    Examples
    --------
    >>> part = ForestPartitionEncoding(n_features=2, n_trees=5, depth=2)
    >>> f = torch.randn(40, 2)
    >>> part.fit_forest(f, (f[:, 0] > 0).long(), seed=0)
    >>> leaves = part(f)
    >>> leaves.shape, bool(((leaves >= 0) & (leaves < part.n_leaves)).all())
    (torch.Size([40, 5]), True)
    """

    def __init__(self, n_features: int, n_trees: int, depth: int):
        super().__init__(n_trees, depth)
        n_nodes = 2 ** depth - 1
        self.register_buffer("split_feature", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("thresholds", torch.full((n_trees, n_nodes), NEVER))
        self.register_buffer("trees", torch.arange(n_trees), persistent=False)
        if depth <= MAX_LOOKUP_DEPTH:  # the leaf that the bits of the 2^d - 1 node splits lead to
            self.register_buffer("leaf_of_code", torch.tensor([_heap_leaf(code, depth) for code in range(2 ** n_nodes)]),
                                 persistent=False)

    @torch.no_grad()
    def fit_forest(self, features: torch.Tensor, labels: torch.Tensor, seed: int) -> None:
        """Fit the forest on the rows of ``features`` (n, n_features) whose ``labels`` are >= 0."""
        from sklearn.ensemble import RandomForestClassifier

        labels = torch.as_tensor(labels).long()
        if features.ndim != 2 or len(labels) != len(features):
            raise ValueError(f"fit_forest needs (n, n_features) features and n labels, got "
                             f"{tuple(features.shape)} and {len(labels)}")
        rows = labels >= 0
        if int(rows.sum()) < 2:
            raise ValueError(f"fit_forest needs at least 2 labelled rows, got {int(rows.sum())}")
        forest = RandomForestClassifier(self.n_trees, max_depth=self.depth, max_features="sqrt",
                                        random_state=seed, n_jobs=1)
        forest.fit(features[rows].double().numpy(), labels[rows].numpy())
        feature = torch.zeros_like(self.split_feature)
        threshold = torch.full_like(self.thresholds, NEVER)
        for t, estimator in enumerate(forest.estimators_):
            tree, stack = estimator.tree_, [(0, 0)]  # (sklearn node, heap node)
            while stack:
                node, h = stack.pop()
                left, right = tree.children_left[node], tree.children_right[node]
                if left < 0 or h >= len(threshold[t]):  # a leaf (or the depth limit): NEVER below it
                    continue
                feature[t, h], threshold[t, h] = int(tree.feature[node]), float(tree.threshold[node])
                stack += [(left, 2 * h + 1), (right, 2 * h + 2)]
        self.split_feature.copy_(feature)
        self.thresholds.copy_(threshold)
        self._cache.clear()

    def _leaves(self, f: torch.Tensor) -> torch.Tensor:
        if self.depth <= MAX_LOOKUP_DEPTH:  # every node's split at once, then the leaf its bits lead to
            return self.leaf_of_code[self._split_codes(f).long()] + self.offsets
        node = torch.zeros(len(f), self.n_trees, dtype=torch.long, device=f.device)
        for _ in range(self.depth):
            value = f.gather(1, self.split_feature[self.trees, node])
            node = 2 * node + 1 + (value > self.thresholds[self.trees, node]).long()
        return node - (2 ** self.depth - 1) + self.offsets
