"""pyro-hea: a semi-supervised disentangled VAE for high-entropy alloy phase prediction and design.

The package reads as the pipeline:

- :mod:`pyro_hea.data`: formulas, physics descriptors, datasets and splits;
- :mod:`pyro_hea.model`: the Pyro model and guide, networks and priors;
- :mod:`pyro_hea.infer`: the SVI training plan, checkpoints, runs and :class:`PhaseModel`;
- :mod:`pyro_hea.diagnostics`: metrics, posterior predictive checks and ArviZ export;
- :mod:`pyro_hea.design`: screening, latent design and inversion;
- :mod:`pyro_hea.explain`: SHAP values, latent traversals and phase maps.

The main names load lazily, so ``import pyro_hea`` and the CLI start fast::

    from pyro_hea import PhaseModel, Designer, load_dataset, paper_split
"""

from pyro_hea._lazy import lazy_exports

__version__ = "0.1.0"

_PRIORS = ("LatentPrior", "PhasePrior", "StandardNormal", "AlloyFamilyMixture", "DescriptorAligned",
           "UniformPhase", "EmpiricalRulesPhase", "make_prior")
__getattr__, _names = lazy_exports(__name__, {
    "PhaseModel": "pyro_hea.infer.phase_model",
    "PhaseVAE": "pyro_hea.model.vae", "ModelConfig": "pyro_hea.model.config",
    "TrainConfig": "pyro_hea.infer.training", "Trainer": "pyro_hea.infer.training",
    "load_dataset": "pyro_hea.data.datasets", "paper_split": "pyro_hea.data.splits",
    "Designer": "pyro_hea.design.designer", "PyroHeaError": "pyro_hea.errors",
    **{name: "pyro_hea.model.priors" for name in _PRIORS},
})
__all__ = [*_names, "__version__"]
