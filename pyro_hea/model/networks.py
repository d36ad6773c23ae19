"""The neural networks of the model and the guide.

Every network takes inputs with any leading batch shape, so that under
parallel enumeration (where y gains a leading dimension of size K) the
inputs broadcast against each other.
"""

from __future__ import annotations

import math

from collections.abc import Sequence

import torch
from torch import nn

from .partition import ForestPartitionEncoding, RandomPartitionEncoding

__all__ = [
    "MLP", "ClassGaussianDescriptors", "PiecewiseLinearEncoding", "tree_thresholds", "RandomPartitionEncoding",
    "PhaseClassifier", "LatentEncoder", "CompositionDecoder", "LinearCompositionDecoder",
    "DescriptorDecoder", "DescriptorEncoder", "broadcast_cat", "log_fractions", "scale_gradient",
]

#: Floor added to atomic fractions before taking logs (0.1 at.%).
LOG_FLOOR = 1e-3


def broadcast_cat(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate along the last axis after broadcasting the leading axes.

    Examples
    --------
    >>> broadcast_cat(torch.zeros(3, 2), torch.ones(4, 1, 5)).shape
    torch.Size([4, 3, 7])
    """
    shape = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=-1)


def log_fractions(x: torch.Tensor) -> torch.Tensor:
    """``log(x / 100 + 0.001)``: compositions in at.% on the scale the decoder's logits live on.

    Examples
    --------
    >>> log_fractions(torch.tensor([[100.0, 0.0]])).round(decimals=2)
    tensor([[ 0.0000, -6.9100]])
    """
    return torch.log(x / 100.0 + LOG_FLOOR)


class MLP(nn.Sequential):
    """Fully connected network with Softplus activations between layers.

    Examples
    --------
    >>> MLP(3, (100, 100), 2)(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(n_in, width), nn.Softplus()]
            n_in = width
        layers.append(nn.Linear(n_in, n_out))
        super().__init__(*layers)


def scale_gradient(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """``t`` unchanged in value, with its gradient multiplied by ``gamma`` (0: cut, 1: unchanged).

    Examples
    --------
    >>> t = torch.ones(2, requires_grad=True)
    >>> scale_gradient(t, 0.25).sum().backward()
    >>> t.grad
    tensor([0.2500, 0.2500])
    """
    if gamma == 1.0:
        return t
    return gamma * t + (1.0 - gamma) * t.detach()


def tree_thresholds(values: torch.Tensor, labels: torch.Tensor, max_leaves: int) -> torch.Tensor:
    """Sorted split thresholds of a decision tree on one feature, with at most ``max_leaves`` leaves.

    Each leaf holds at least 2 % of the rows (and 2 rows), so that a few
    labels do not place edges on single alloys. Fewer than two classes,
    fewer than 4 rows, or fewer than 2 leaves give no threshold.

    Examples
    --------
    >>> tree_thresholds(torch.arange(10.0), (torch.arange(10) >= 6).long(), 4).tolist()
    [5.5]
    """
    from sklearn.tree import DecisionTreeClassifier

    if max_leaves < 2 or len(values) < 4 or len(torch.unique(labels)) < 2:
        return torch.zeros(0)
    tree = DecisionTreeClassifier(max_leaf_nodes=max_leaves, random_state=0,
                                  min_samples_leaf=max(2, math.ceil(0.02 * len(values))))
    tree.fit(values.reshape(-1, 1).double().numpy(), labels.numpy())
    split = tree.tree_.feature >= 0
    return torch.as_tensor(tree.tree_.threshold[split], dtype=torch.float32).sort().values


class PiecewiseLinearEncoding(nn.Module):
    """Each descriptor as itself plus its piecewise-linear encoding over ``n_bins`` bins.

    Bin t of feature j reads ``clip((f_j - e_{t-1}) / (e_t - e_{t-1}), 0, 1)``:
    0 below the bin, 1 above it, linear inside. An MLP on this encoding can
    place sharp thresholds where the data are dense, as the empirical
    phase-formation rules do (delta <= 6.6 %, VEC >= 8), which a Softplus MLP
    on the raw values learns only slowly (Gorishniy, Rubachev and Babenko,
    NeurIPS 2022). The edges are a buffer: uniform over [-2.5, 2.5] until
    :meth:`fit_edges` sets them from the training features (quantiles, or
    target-aware tree thresholds), and they are saved with the weights.

    Examples
    --------
    >>> enc = PiecewiseLinearEncoding(n_features=2, n_bins=4)
    >>> enc(torch.zeros(3, 2)).shape
    torch.Size([3, 10])
    """

    def __init__(self, n_features: int, n_bins: int):
        super().__init__()
        self.n_features, self.n_bins = n_features, n_bins
        self.register_buffer("edges", torch.linspace(-2.5, 2.5, n_bins + 1).repeat(n_features, 1))

    @property
    def n_out(self) -> int:
        return self.n_features * (1 + self.n_bins)

    @torch.no_grad()
    def fit_edges(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Set the edges from the training ``features`` (n, n_features).

        Without ``labels``: the 0, 1/T, ..., 1 quantiles of each feature.
        With ``labels`` (a class per row, -1 where unknown): target-aware
        bins, the split thresholds of a univariate decision tree with up to
        T leaves fitted to the labelled rows of each feature (Gorishniy et
        al. 2022), topped up with quantiles to T + 1 edges.

        Examples
        --------
        >>> enc = PiecewiseLinearEncoding(n_features=1, n_bins=4)
        >>> f = torch.linspace(-1.0, 1.0, 41)[:, None]
        >>> enc.fit_edges(f, labels=(f[:, 0] > 0.3).long())
        >>> bool(torch.isclose(enc.edges[0], torch.tensor(0.325)).any())  # the class boundary is an edge
        True
        """
        if features.ndim != 2 or features.shape[1] != self.n_features or len(features) < 2:
            raise ValueError(f"fit_edges needs an (n >= 2, {self.n_features}) tensor, got {tuple(features.shape)}")
        if labels is None:
            levels = torch.linspace(0.0, 1.0, self.n_bins + 1, dtype=features.dtype)
            self.edges.copy_(torch.quantile(features, levels, dim=0).T)
            return
        labels = torch.as_tensor(labels).reshape(-1)
        if len(labels) != len(features):
            raise ValueError(f"fit_edges got {len(labels)} labels for {len(features)} rows")
        for j in range(self.n_features):
            thresholds = tree_thresholds(features[labels >= 0, j], labels[labels >= 0], self.n_bins)
            levels = torch.linspace(0.0, 1.0, self.n_bins + 1 - len(thresholds), dtype=features.dtype)
            quantiles = torch.quantile(features[:, j], levels)
            self.edges[j].copy_(torch.cat([quantiles, thresholds.to(features.dtype)]).sort().values)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        lo, hi = self.edges[:, :-1], self.edges[:, 1:]
        width = (hi - lo).clamp_min(1e-3)  # repeated quantiles (discrete values) become steps
        bins = ((f[..., None] - lo) / width).clamp(0.0, 1.0)
        return torch.cat([f, bins.flatten(-2)], dim=-1)


class PhaseClassifier(nn.Module):
    """q(y | x): logits over K phase classes from the standardized descriptors.

    With ``n_bins > 0`` the descriptors are first expanded by a
    :class:`PiecewiseLinearEncoding`; with ``use_composition`` the at.%
    composition (scaled to fractions) is appended. With ``n_members > 1`` it
    is a deep ensemble: M networks on the same inputs, each trained on its
    own classification loss (:meth:`member_logits`), whose probabilities are
    averaged, ``q(y | x) = (1/M) sum_m q_m(y | x)``. With ``n_trees > 0`` each
    network's logits add a linear model on the leaves of a
    :class:`RandomPartitionEncoding`, ``sum_t w[leaf_t(f)] / sqrt(T)``
    (the leaf weights start at zero and are shared by the members). With
    ``n_forest_trees > 0`` they add the same on the leaves of a
    :class:`ForestPartitionEncoding`, fitted on the labelled alloys.

    Examples
    --------
    >>> PhaseClassifier(8, 55, 2, [100, 100], n_bins=8)(torch.zeros(3, 55), torch.zeros(3, 8)).shape
    torch.Size([3, 2])
    >>> PhaseClassifier(8, 55, 2, [16], n_members=5).member_logits(torch.zeros(3, 55), torch.zeros(3, 8)).shape
    torch.Size([5, 3, 2])
    >>> PhaseClassifier(8, 55, 2, [16], n_trees=10, tree_depth=3)(torch.zeros(3, 55), torch.zeros(3, 8)).shape
    torch.Size([3, 2])
    """

    def __init__(self, n_descriptors: int, n_elements: int, n_classes: int, hidden: Sequence[int],
                 use_composition: bool = False, n_bins: int = 0, n_members: int = 1,
                 n_trees: int = 0, tree_depth: int = 5, n_forest_trees: int = 0, forest_depth: int = 3):
        super().__init__()
        self.use_composition = use_composition
        self.n_members = int(n_members)
        self.encoding = PiecewiseLinearEncoding(n_descriptors, n_bins) if n_bins > 0 else None
        n_in = (self.encoding.n_out if self.encoding is not None else n_descriptors)
        n_in += n_elements if use_composition else 0
        # one network keeps the layout (and the checkpoints) of the single classifier
        self.net = (MLP(n_in, hidden, n_classes) if self.n_members == 1
                    else nn.ModuleList(MLP(n_in, hidden, n_classes) for _ in range(self.n_members)))
        self.partition = RandomPartitionEncoding(n_descriptors, n_trees, tree_depth) if n_trees > 0 else None
        if self.partition is not None:
            self.leaf_logits = nn.Embedding(self.partition.n_leaves, n_classes)
            nn.init.zeros_(self.leaf_logits.weight)
        self.forest = ForestPartitionEncoding(n_descriptors, n_forest_trees, forest_depth) if n_forest_trees > 0 else None
        if self.forest is not None:
            self.forest_leaf_logits = nn.Embedding(self.forest.n_leaves, n_classes)
            nn.init.zeros_(self.forest_leaf_logits.weight)

    def member_logits(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Each member's logits, shape (M, ..., K)."""
        inputs = self.encoding(features) if self.encoding is not None else features
        if self.use_composition:
            inputs = broadcast_cat(inputs, x / 100.0)
        logits = (self.net(inputs).unsqueeze(0) if self.n_members == 1
                  else torch.stack([net(inputs) for net in self.net]))
        if self.partition is not None:
            logits = logits + self.partition.leaf_sum(features, self.leaf_logits.weight) / self.partition.n_trees ** 0.5
        if self.forest is not None:
            logits = logits + self.forest.leaf_sum(features, self.forest_leaf_logits.weight) / self.forest.n_trees ** 0.5
        return logits

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        logits = self.member_logits(x, features)
        if self.n_members == 1:
            return logits[0]
        # log of the mean member probability: the ensemble's normalized logits
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(self.n_members)


class LatentEncoder(nn.Module):
    """q(z | x, y): loc and scale of a diagonal Gaussian from composition, descriptors and y.

    The composition enters twice: as fractions and as :func:`log_fractions`,
    the scale on which a softmax decoder's logits live (measured to help
    held-out reconstruction).

    With ``class_latent`` (the linear decoder, shared, not a part of the
    encoder) the network reads x alone and places the alloy at m(x) in the
    class-conditional latent v = mu_y + sigma_y z; the loc is
    ``(m(x) - mu_y) / sigma_y`` and the scale ``s(x) / sigma_y``, so both
    classes decode x equally well. Without it (the MLP decoder) the network
    also reads y, as in the published model.

    Examples
    --------
    >>> decoder = LinearCompositionDecoder(3, 2, 5)
    >>> enc = LatentEncoder(5, 8, 2, 3, [16], class_latent=decoder)
    >>> loc, scale = enc(torch.zeros(4, 5), torch.zeros(4, 8), torch.eye(2)[[0, 1, 1, 0]])
    >>> loc.shape, enc.net[0].in_features
    (torch.Size([4, 3]), 18)
    """

    def __init__(self, n_elements: int, n_descriptors: int, n_classes: int, latent_dim: int,
                 hidden: Sequence[int], class_latent: nn.Module | None = None):
        super().__init__()
        # kept out of the module tree: its parameters are the decoder's, saved once with the decoder
        self.__dict__["class_latent"] = class_latent
        n_y = 0 if class_latent is not None else n_classes
        self.net = MLP(2 * n_elements + n_descriptors + n_y, hidden, 2 * latent_dim)

    @property
    def class_shift(self) -> nn.Module | None:
        """The class positions mu_y (the linear decoder's ``class_shift``), or None."""
        return None if self.class_latent is None else self.class_latent.class_shift

    def forward(self, x: torch.Tensor, features: torch.Tensor, y_onehot: torch.Tensor):
        inputs = [x / 100.0, log_fractions(x), features]
        if self.class_latent is None:
            inputs.append(y_onehot)
        out = self.net(broadcast_cat(*inputs))
        loc, scale = out.chunk(2, dim=-1)
        scale = nn.functional.softplus(scale) + 1e-3
        if self.class_latent is not None:
            sigma = self.class_latent.class_scale(y_onehot)
            loc = (loc - self.class_latent.class_shift(y_onehot)) / sigma
            scale = scale / sigma
        return loc, scale


class DescriptorDecoder(nn.Module):
    """p(f | u, y): loc ``g(u, y)`` (an MLP) and one learned scale per standardized descriptor.

    Examples
    --------
    >>> loc, scale = DescriptorDecoder(2, 2, 8, [16])(torch.zeros(3, 2), torch.eye(2)[[0, 1, 1]])
    >>> loc.shape, scale.shape
    (torch.Size([3, 8]), torch.Size([8]))
    """

    def __init__(self, style_dim: int, n_classes: int, n_descriptors: int, hidden: Sequence[int]):
        super().__init__()
        self.net = MLP(style_dim + n_classes, hidden, n_descriptors)
        self.log_scale = nn.Parameter(torch.zeros(n_descriptors))

    def forward(self, u: torch.Tensor, y_onehot: torch.Tensor):
        return self.net(broadcast_cat(u, y_onehot)), self.log_scale.exp()


class ClassGaussianDescriptors(nn.Module):
    """p(f | y) = MultivariateNormal(m_y, L_y L_y^T): one full-covariance Gaussian per class (QDA).

    ``L_y`` is lower triangular with a positive diagonal (softplus). The
    classes start at the standard normal of the standardized descriptors.

    Examples
    --------
    >>> loc, tril = ClassGaussianDescriptors(2, 8)(torch.eye(2)[[0, 1, 1]])
    >>> loc.shape, tril.shape
    (torch.Size([3, 8]), torch.Size([3, 8, 8]))
    """

    def __init__(self, n_classes: int, n_descriptors: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(n_classes, n_descriptors))
        self.raw_tril = nn.Parameter(torch.zeros(n_classes, n_descriptors, n_descriptors))
        self.register_buffer("_lower", torch.tril(torch.ones(n_descriptors, n_descriptors), -1))
        self._diag_offset = math.log(math.e - 1.0)  # softplus(0 + offset) = 1: identity at the start

    def scale_tril(self) -> torch.Tensor:
        """L_y for every class, shape (K, F, F)."""
        diag = nn.functional.softplus(torch.diagonal(self.raw_tril, dim1=-2, dim2=-1) + self._diag_offset) + 1e-3
        return self.raw_tril * self._lower + torch.diag_embed(diag)

    def forward(self, y_onehot: torch.Tensor):
        tril = self.scale_tril()
        return y_onehot @ self.loc, torch.einsum("...k,kij->...ij", y_onehot, tril)


class DescriptorEncoder(nn.Module):
    """q(u | x, y): loc and scale of the descriptor style from the standardized descriptors and y.

    Examples
    --------
    >>> loc, scale = DescriptorEncoder(8, 2, 2, [16])(torch.zeros(3, 8), torch.eye(2)[[0, 1, 1]])
    >>> loc.shape
    torch.Size([3, 2])
    """

    def __init__(self, n_descriptors: int, n_classes: int, style_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = MLP(n_descriptors + n_classes, hidden, 2 * style_dim)

    def forward(self, features: torch.Tensor, y_onehot: torch.Tensor):
        loc, raw_scale = self.net(broadcast_cat(features, y_onehot)).chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + 1e-3


def _no_class_position(module, inputs, out):
    """Forward hook of the class shift with ``class_position=False``: zero until the positions are estimated."""
    return out if bool(module.estimated) else torch.zeros_like(out)


class LinearCompositionDecoder(nn.Module):
    """p(x | z, y): element logits ``W (mu_y + sigma_y z) + b``, linear in z, with a class position mu_y.

    A softmax of a linear map is multinomial logistic PCA: each element has
    a loading vector (a row of ``W``), and each class y sits at its own place
    ``mu_y`` of the latent space (``class_shift``, a K -> latent_dim linear
    map without bias), so that flipping y at a fixed z moves the alloy along
    ``mu_1 - mu_0`` and changes its elements accordingly. Any sparse alloy is
    reachable at some z once the latent is wide enough; because nothing in it
    is tied to the element combinations seen in training, it reconstructs
    unseen combinations (see ``docs/model.md``).

    With ``class_scale`` each class also has its own spread: per axis,
    ``sigma_y = exp(class_log_scale[y])``, so that v = mu_y + sigma_y z ~
    N(mu_y, diag sigma_y^2) under z ~ N(0, I), and flipping y at a fixed z maps
    an alloy to the same standardized place of the other class (a class
    effect that depends on z). Without it sigma_y = 1.

    Examples
    --------
    >>> LinearCompositionDecoder(16, 2, 55)(torch.zeros(3, 16), torch.eye(2)[[0, 1, 1]]).shape
    torch.Size([3, 55])
    """

    def __init__(self, latent_dim: int, n_classes: int, n_elements: int, hidden: Sequence[int] = (),
                 class_position: bool = True, class_scale: bool = False):
        super().__init__()
        self.latent = nn.Linear(latent_dim, n_elements)
        self.class_shift = nn.Linear(n_classes, latent_dim, bias=False)
        self.class_log_scale = nn.Parameter(torch.zeros(n_classes, latent_dim)) if class_scale else None
        if not class_position:  # mu_y = 0 for every class: the composition does not depend on y
            nn.init.zeros_(self.class_shift.weight)
            # set by PhaseVAE.estimate_class_positions after training (saved with the weights)
            self.class_shift.register_buffer("estimated", torch.tensor(False))
            self.class_shift.register_forward_hook(_no_class_position)

    def class_scale(self, y_onehot: torch.Tensor) -> torch.Tensor:
        """sigma_y, shape (..., latent_dim): ones without ``class_scale``."""
        if self.class_log_scale is None:
            return y_onehot.new_ones(y_onehot.shape[:-1] + (self.latent.in_features,))
        return torch.exp(y_onehot @ self.class_log_scale)

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        if self.class_log_scale is not None:
            z = self.class_scale(y_onehot) * z
        return self.latent(z + self.class_shift(y_onehot))


class CompositionDecoder(nn.Module):
    """p(x | z, y): logits of the element probabilities from an MLP on [z, y] (the published decoder).

    Examples
    --------
    >>> CompositionDecoder(2, 2, 55, [100, 100])(torch.zeros(3, 2), torch.eye(2)[[0, 1, 1]]).shape
    torch.Size([3, 55])
    """

    def __init__(self, latent_dim: int, n_classes: int, n_elements: int, hidden: Sequence[int]):
        super().__init__()
        self.net = MLP(latent_dim + n_classes, hidden, n_elements)

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        return self.net(broadcast_cat(z, y_onehot))
