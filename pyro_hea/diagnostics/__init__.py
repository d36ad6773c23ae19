"""Diagnostics: metrics, posterior predictive checks, ArviZ export and training plots."""

from pyro_hea._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    'to_inference_data': 'pyro_hea.diagnostics.inference_data',
    'single_phase_classes': 'pyro_hea.diagnostics.inference_data',
    'MULTI_PHASE_NAMES': 'pyro_hea.diagnostics.inference_data',
    'expected_calibration_error': 'pyro_hea.infer.metrics',
    'classification_metrics': 'pyro_hea.infer.metrics',
    'reconstruction_metrics': 'pyro_hea.infer.metrics',
    'plot_training_curve': 'pyro_hea.diagnostics.plots',
    'save_figure': 'pyro_hea.diagnostics.plots',
    'ELEMENT_GROUPS': 'pyro_hea.diagnostics.ppc',
    'P_VALUE_CONVENTION': 'pyro_hea.diagnostics.ppc',
    'element_group': 'pyro_hea.diagnostics.ppc',
    'posterior_predictive_pvalue': 'pyro_hea.diagnostics.ppc',
    'label_table': 'pyro_hea.diagnostics.ppc',
    'rate_statistics': 'pyro_hea.diagnostics.ppc',
    'single_phase_rate_ppc': 'pyro_hea.diagnostics.ppc',
    'calibration_table': 'pyro_hea.diagnostics.ppc',
    'calibration_by_split': 'pyro_hea.diagnostics.ppc',
    'latent_means': 'pyro_hea.diagnostics.ppc',
    'compare_fits': 'pyro_hea.diagnostics.ppc',
    'ppc_summary': 'pyro_hea.diagnostics.ppc',
    'plot_calibration': 'pyro_hea.diagnostics.ppc_plots',
    'plot_separation': 'pyro_hea.diagnostics.ppc_plots',
    'plot_single_phase_rate': 'pyro_hea.diagnostics.ppc_plots',
    'plot_latent_space': 'pyro_hea.diagnostics.ppc_plots',
    'write_report': 'pyro_hea.diagnostics.ppc_plots',
    'REPORT_FILES': 'pyro_hea.diagnostics.ppc_plots',
    'calibration_bins': 'pyro_hea.infer.metrics',
})
