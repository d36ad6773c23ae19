"""The neural networks of the model and the guide.

Every network takes inputs with any leading batch shape, so that under
parallel enumeration (where y gains a leading dimension of size K) the
inputs broadcast against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP", "PhaseClassifier", "LatentEncoder", "CompositionDecoder", "broadcast_cat"]


def broadcast_cat(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate along the last axis after broadcasting the leading axes.

    Examples
    --------
    >>> broadcast_cat(torch.zeros(3, 2), torch.ones(4, 1, 5)).shape
    torch.Size([4, 3, 7])
    """
    shape = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=-1)


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


class PhaseClassifier(nn.Module):
    """q(y | x): logits over K phase classes from the standardized descriptors.

    With ``use_composition`` the at.% composition (scaled to fractions) is
    appended to the descriptors.
    """

    def __init__(self, n_descriptors: int, n_elements: int, n_classes: int, hidden: Sequence[int],
                 use_composition: bool = False):
        super().__init__()
        self.use_composition = use_composition
        n_in = n_descriptors + (n_elements if use_composition else 0)
        self.net = MLP(n_in, hidden, n_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        inputs = broadcast_cat(features, x / 100.0) if self.use_composition else features
        return self.net(inputs)


class LatentEncoder(nn.Module):
    """q(z | x, y): loc and scale of a diagonal Gaussian from composition, descriptors and y."""

    def __init__(self, n_elements: int, n_descriptors: int, n_classes: int, latent_dim: int,
                 hidden: Sequence[int]):
        super().__init__()
        self.net = MLP(n_elements + n_descriptors + n_classes, hidden, 2 * latent_dim)

    def forward(self, x: torch.Tensor, features: torch.Tensor, y_onehot: torch.Tensor):
        out = self.net(broadcast_cat(x / 100.0, features, y_onehot))
        loc, raw_scale = out.chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + 1e-3


class CompositionDecoder(nn.Module):
    """p(x | z, y): logits of the element probabilities of a composition."""

    def __init__(self, latent_dim: int, n_classes: int, n_elements: int, hidden: Sequence[int]):
        super().__init__()
        self.net = MLP(latent_dim + n_classes, hidden, n_elements)

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        return self.net(broadcast_cat(z, y_onehot))
