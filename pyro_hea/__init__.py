"""pyro-hea: a semi-supervised disentangled VAE for high-entropy alloy phase prediction and design."""

__version__ = "0.1.0"

from .api import PhaseModel  # noqa: E402
from .datasets import load_dataset  # noqa: E402
from .model import ModelConfig, PhaseVAE  # noqa: E402
from .splits import paper_split  # noqa: E402
from .training import TrainConfig, Trainer  # noqa: E402

__all__ = ["PhaseModel", "PhaseVAE", "ModelConfig", "TrainConfig", "Trainer", "load_dataset", "paper_split", "__version__"]
