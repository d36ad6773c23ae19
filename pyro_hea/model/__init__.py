"""The generative model and guide (Pyro programs), their networks, the priors and the tensors they read."""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'MLP': 'pyro_hea.model.networks',
    'PiecewiseLinearEncoding': 'pyro_hea.model.networks',
    'PhaseClassifier': 'pyro_hea.model.networks',
    'LatentEncoder': 'pyro_hea.model.networks',
    'CompositionDecoder': 'pyro_hea.model.networks',
    'LinearCompositionDecoder': 'pyro_hea.model.networks',
    'broadcast_cat': 'pyro_hea.model.networks',
    'log_fractions': 'pyro_hea.model.networks',
    'LatentPrior': 'pyro_hea.model.priors',
    'PhasePrior': 'pyro_hea.model.priors',
    'StandardNormal': 'pyro_hea.model.priors',
    'AlloyFamilyMixture': 'pyro_hea.model.priors',
    'DescriptorAligned': 'pyro_hea.model.priors',
    'UniformPhase': 'pyro_hea.model.priors',
    'EmpiricalRulesPhase': 'pyro_hea.model.priors',
    'Z_PRIORS': 'pyro_hea.model.priors',
    'Y_PRIORS': 'pyro_hea.model.priors',
    'make_prior': 'pyro_hea.model.priors',
    'AlloyTensors': 'pyro_hea.model.tensors',
    'labels_from_frame': 'pyro_hea.model.tensors',
    'ModelConfig': 'pyro_hea.model.config',
    'PhaseVAE': 'pyro_hea.model.vae',
})
