"""Lazy re-exports for package ``__init__`` modules: a name's module is imported on first use.

This keeps ``import pyro_hea`` and the command line fast (no torch until it is needed)
and lets the subpackages re-export each other's names without import cycles.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, names: dict[str, str]):
    """Return ``(__getattr__, __all__)`` for ``package``, mapping each name to its module.

    Examples
    --------
    >>> getattr_, all_ = lazy_exports("pyro_hea", {"PhaseVAE": "pyro_hea.model.vae"})
    >>> getattr_("PhaseVAE").__name__
    'PhaseVAE'
    """

    def __getattr__(name: str):
        if name in names:
            return getattr(import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(names)
