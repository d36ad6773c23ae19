"""What the explanation modules share: their errors and the class they explain."""

from __future__ import annotations

from pyro_hea.errors import PyroHeaError

__all__ = ["ExplainError", "ShapMissingError", "SHAP_EXTRA_HINT"]

SHAP_EXTRA_HINT = 'pip install -e ".[shap]"'


class ExplainError(PyroHeaError):
    """Bad input to an interpretability function."""


class ShapMissingError(ExplainError):
    """The optional dependency shap is not installed."""


def _positive_class(model, positive: int | None) -> int:
    k = model.n_classes
    positive = 1 if positive is None else int(positive)
    if not 0 <= positive < k:
        raise ExplainError(f"positive class must be in 0..{k - 1}, got {positive}")
    return positive

