"""Inverse design: screening, latent-space design, inversion, design spaces, the judge and novelty."""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'ContrastFit': 'pyro_hea.design.contrast',
    'ensure_contrast_position': 'pyro_hea.design.contrast',
    'fit_contrast_position': 'pyro_hea.design.contrast',
    'needs_contrast_position': 'pyro_hea.design.contrast',
    'DesignError': 'pyro_hea.design.designer',
    'DesignResult': 'pyro_hea.design.designer',
    'Designer': 'pyro_hea.design.designer',
    'format_summary': 'pyro_hea.design.designer',
    'Judge': 'pyro_hea.design.judge',
    'NOVELTY_THRESHOLD': 'pyro_hea.design.novelty',
    'DescriptorDomain': 'pyro_hea.design.novelty',
    'NoveltyIndex': 'pyro_hea.design.novelty',
    'composition_distance': 'pyro_hea.design.novelty',
    'plot_contrast': 'pyro_hea.design.plots',
    'plot_latent_candidates': 'pyro_hea.design.plots',
    'plot_path_heatmap': 'pyro_hea.design.plots',
    'plot_trajectory': 'pyro_hea.design.plots',
    'DEFAULT_PALETTE': 'pyro_hea.design.space',
    'RADIOACTIVE': 'pyro_hea.design.space',
    'CompositionRules': 'pyro_hea.design.space',
    'DesignSpaceError': 'pyro_hea.design.space',
    'check_validity': 'pyro_hea.design.space',
    'equimolar_space': 'pyro_hea.design.space',
    'formulas': 'pyro_hea.design.space',
    'grid_space': 'pyro_hea.design.space',
    'principal_elements': 'pyro_hea.design.space',
    'realize': 'pyro_hea.design.space',
})
