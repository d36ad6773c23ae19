"""Explanations: SHAP values of q(y|x), latent traversals, phase maps and disentanglement."""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'ExplainError': 'pyro_hea.explain.explain',
    'ShapMissingError': 'pyro_hea.explain.explain',
    'Traversal': 'pyro_hea.explain.explain',
    'alloy_explanations': 'pyro_hea.explain.explain',
    'background_sample': 'pyro_hea.explain.explain',
    'classifier_function': 'pyro_hea.explain.explain',
    'disentanglement_auc': 'pyro_hea.explain.explain',
    'disentanglement_score': 'pyro_hea.explain.explain',
    'exact_shapley_values': 'pyro_hea.explain.explain',
    'explain_run': 'pyro_hea.explain.explain',
    'global_importance': 'pyro_hea.explain.explain',
    'latent_traversals': 'pyro_hea.explain.explain',
    'phase_probability_map': 'pyro_hea.explain.explain',
    'plot_alloy_explanation': 'pyro_hea.explain.explain',
    'plot_latent_traversals': 'pyro_hea.explain.explain',
    'plot_phase_probability_map': 'pyro_hea.explain.explain',
    'plot_shap_bar': 'pyro_hea.explain.explain',
    'plot_shap_beeswarm': 'pyro_hea.explain.explain',
    'posterior_means': 'pyro_hea.explain.explain',
    'shap_values': 'pyro_hea.explain.explain',
})
