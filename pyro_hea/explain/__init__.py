"""Explanations of a trained model: SHAP of the classifier head, latent traversals, disentanglement.

Three questions about a trained :class:`~pyro_hea.infer.phase_model.PhaseModel`:

1. **Which descriptors drive q(y | x)?** :func:`shap_values` explains the
   classifier head over the 8 physics descriptors with SHAP (an optional
   dependency: ``pip install -e ".[shap]"``). The value function is the
   interventional one: a coalition S of descriptors keeps the alloy's own
   values, the others are drawn from a background sample of training alloys.
   With 8 features the explanation is exact (2^8 coalitions), and
   :func:`exact_shapley_values` computes the same numbers by brute force,
   without shap, as a check.
2. **What does each latent axis encode?** :func:`latent_traversals` decodes
   along each axis of z at fixed y (multi-phase and single-phase) and
   :func:`plot_latent_traversals` draws the compositions as heat maps.
   :func:`phase_probability_map` maps the classifier over a 2-D latent plane.
   q(y | x) depends on x, not z, so it is mapped *through the decoder*: each
   grid point z is decoded with y, the decoded composition is re-featurized
   and classified, giving q(y=1 | x̂(z, y)). (Bayes' p(y | z) is no
   alternative here: y and z are independent under the prior, so p(y | z)
   is the prior p(y) unless an alloy x is also given.)
3. **Is y kept out of z?** :func:`disentanglement_auc` is the
   cross-validated ROC AUC of a logistic regression that predicts y from the
   posterior mean of z on held-out alloys. About 0.5 means z carries no
   information about the phase (disentangled); near 1 means y can be read
   off z.

Examples
--------
>>> from pyro_hea.infer.run import load_run
>>> run = load_run("runs/pei2020")                      # needs a run written by pyro-hea train  # doctest: +SKIP
>>> report = explain_run(run, "runs/pei2020/explain")   # doctest: +SKIP
>>> report["disentanglement"]["auc"]                    # doctest: +SKIP
0.53
"""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'ExplainError': 'pyro_hea.explain.common',
    'ShapMissingError': 'pyro_hea.explain.common',
    'Traversal': 'pyro_hea.explain.latent',
    'alloy_explanations': 'pyro_hea.explain.shapley',
    'background_sample': 'pyro_hea.explain.shapley',
    'classifier_function': 'pyro_hea.explain.shapley',
    'disentanglement_auc': 'pyro_hea.explain.latent',
    'disentanglement_score': 'pyro_hea.explain.latent',
    'exact_shapley_values': 'pyro_hea.explain.shapley',
    'explain_run': 'pyro_hea.explain.report',
    'global_importance': 'pyro_hea.explain.shapley',
    'latent_traversals': 'pyro_hea.explain.latent',
    'phase_probability_map': 'pyro_hea.explain.latent',
    'plot_alloy_explanation': 'pyro_hea.explain.shapley',
    'plot_latent_traversals': 'pyro_hea.explain.latent',
    'plot_phase_probability_map': 'pyro_hea.explain.latent',
    'plot_shap_bar': 'pyro_hea.explain.shapley',
    'plot_shap_beeswarm': 'pyro_hea.explain.shapley',
    'posterior_means': 'pyro_hea.explain.latent',
    'shap_values': 'pyro_hea.explain.shapley',
})
