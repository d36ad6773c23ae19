"""A Griffe extension that turns Sphinx roles in docstrings into MkDocs cross-references.

The docstrings use numpydoc with Sphinx roles (:class:`~pyro_hea.design.designer.Designer`,
:meth:`score`). mkdocstrings does not read roles, so this extension rewrites them, once the
whole package is loaded:

- a role whose target resolves to an object of ``pyro_hea`` (fully qualified, or relative to
  the docstring's scope) becomes an autorefs link, ``[`Designer`][pyro_hea.design.designer.Designer]``;
  ``mkdocs build --strict`` then fails when that target is not documented, so a reference left
  behind by a rename is caught;
- anything else (``torch.nn.Module``, private names) becomes plain code.
"""

from __future__ import annotations

import re

import griffe

#: Only objects of this package become links; the tests point it at a package of their own.
PACKAGE = "pyro_hea"

_ROLE = re.compile(r":(?:py:)?(mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`<>]+)`")


def _target(obj: griffe.Object, name: str, collection) -> str | None:
    """The documented path of ``name`` as seen from ``obj``, or None when it is not ours."""
    if name.startswith(PACKAGE + ".") or name == PACKAGE:
        path = name
    else:
        first, _, rest = name.partition(".")
        scope = obj
        path = None
        while scope is not None and path is None:
            try:
                path = scope.resolve(first)
            except Exception:  # noqa: BLE001 - griffe raises NameResolutionError and friends
                scope = scope.parent
        if path is None:
            return None
        path = f"{path}.{rest}" if rest else path
    if path.split(".")[0] != PACKAGE or any(p.startswith("_") for p in path.split(".")[1:]):
        return None
    try:
        found = collection[path]
    except Exception:  # noqa: BLE001 - unknown: leave the path, so the strict build reports it
        return path
    if isinstance(found, griffe.Alias):
        try:
            return found.final_target.path
        except Exception:  # noqa: BLE001
            return path
    return path


def _rewrite(obj: griffe.Object, collection) -> None:
    doc = obj.docstring
    if doc is None or ":" not in doc.value:
        return

    def replace(match: re.Match) -> str:
        role, tilde, name = match.groups()
        name = name.strip()
        shown = name.rsplit(".", 1)[-1] if tilde else name
        if role in ("meth", "func"):
            shown += "()"
        path = _target(obj, name.lstrip("~"), collection)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    # reST's "text::" before a literal block reads as "text:" (the block is indented code).
    doc.value = re.sub(r"(\S)::(\n\s*\n)", r"\1:\2", _ROLE.sub(replace, doc.value))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        collection = loader.modules_collection
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            _rewrite(obj, collection)
            for member in obj.members.values():
                if not member.is_alias:
                    stack.append(member)

    # Older Griffe releases call this event on_package_loaded; a second pass finds no roles left.
    on_package_loaded = on_package
