"""Inference: the SVI training plan, checkpoints, run directories and the user-facing PhaseModel."""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'CheckpointError': 'pyro_hea.infer.checkpoint',
    'FORMAT': 'pyro_hea.infer.checkpoint',
    'FORMAT_VERSION': 'pyro_hea.infer.checkpoint',
    'save_checkpoint': 'pyro_hea.infer.checkpoint',
    'load_checkpoint': 'pyro_hea.infer.checkpoint',
    'atomic_write': 'pyro_hea.io',
    'PhaseModel': 'pyro_hea.infer.phase_model',
    'CLASS_NAMES': 'pyro_hea.infer.phase_model',
    'Run': 'pyro_hea.infer.run',
    'prepare_run_dir': 'pyro_hea.infer.run',
    'write_json': 'pyro_hea.io',
    'load_run': 'pyro_hea.infer.run',
    'MODEL_FILE': 'pyro_hea.infer.run',
    'expected_calibration_error': 'pyro_hea.infer.metrics',
    'calibration_bins': 'pyro_hea.infer.metrics',
    'classification_metrics': 'pyro_hea.infer.metrics',
    'reconstruction_metrics': 'pyro_hea.infer.metrics',
    'TrainConfig': 'pyro_hea.infer.training',
    'TrainingError': 'pyro_hea.infer.training',
    'TrainingState': 'pyro_hea.infer.training',
    'Trainer': 'pyro_hea.infer.training',
    'make_elbo': 'pyro_hea.infer.training',
    'SELECTION_RULES': 'pyro_hea.infer.training',
})
