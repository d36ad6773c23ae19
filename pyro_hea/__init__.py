"""pyro-hea: a semi-supervised disentangled VAE for high-entropy alloy phase prediction and design.

The main names load lazily, so ``import pyro_hea`` and the CLI start fast::

    from pyro_hea import PhaseModel, load_dataset, paper_split
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "PhaseModel": "api", "PhaseVAE": "model", "ModelConfig": "model", "TrainConfig": "training",
    "Trainer": "training", "load_dataset": "datasets", "paper_split": "splits",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'pyro_hea' has no attribute {name!r}")
