"""The documentation site: it builds with ``mkdocs build --strict``, covers the API and the CLI,
and the docstring examples follow the doctest rules.

The site tests need the ``docs`` extra (``pip install -e ".[dev,docs]"``); without it they are
skipped, saying so. The rules on docstring examples need nothing but the source.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")
MISSING = [name for name in DOCS_TOOLS if importlib.util.find_spec(name.split(".")[0]) is None
           or importlib.util.find_spec(name) is None]
needs_docs = pytest.mark.skipif(
    bool(MISSING), reason=f"the docs extra is not installed (no {', '.join(MISSING)}): "
                          f"pip install -e \".[docs]\"")


def _hooks():
    spec = importlib.util.spec_from_file_location("pyro_hea_docs", ROOT / "docs/_hooks/pyro_hea_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _public_modules() -> list[str]:
    names = ["pyro_hea"]
    for info in pkgutil.walk_packages([str(ROOT / "pyro_hea")], prefix="pyro_hea."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


# ---- the built site ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with ``mkdocs build --strict`` into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                    if "WARNING" in line or "ERROR" in line or "Error" in line]
        pytest.fail("mkdocs build --strict failed:\n" + "\n".join(problems[-40:] or [proc.stderr[-4000:]]))
    return out


def _inventory(site: Path) -> set[str]:
    """The object names in the site's ``objects.inv`` (Sphinx inventory, version 2)."""
    header, _, body = site.joinpath("objects.inv").read_bytes().partition(
        b"# The remainder of this file is compressed using zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2")
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines() if line}


@needs_docs
def test_site_builds_strict_with_every_page(site):
    for page in ("index.html", "cli/index.html", "reference/index.html", "reference/design/index.html",
                 "data/index.html", "model/index.html", "results/data_efficiency/index.html"):
        assert (site / page).is_file(), page
    index = (site / "index.html").read_text()
    for citation in ("npj Computational Materials", "Scientific Data", "Scientific Reports", "2409.06740"):
        assert citation in index, citation


@needs_docs
def test_reference_documents_every_public_function_and_class(site):
    documented = _inventory(site)
    missing = []
    for name in _public_modules():
        module = importlib.import_module(name)
        if name not in documented:
            missing.append(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ == name and f"{name}.{attr}" not in documented:
                missing.append(f"{name}.{attr}")
    assert not missing, f"not in the API reference: {missing}"


@needs_docs
def test_reference_documents_every_lazy_reexport(site):
    documented = _inventory(site)
    for package in ("pyro_hea", "pyro_hea.data", "pyro_hea.model", "pyro_hea.infer",
                    "pyro_hea.diagnostics", "pyro_hea.design", "pyro_hea.explain"):
        for name in importlib.import_module(package).__all__:
            if name.startswith("__"):
                continue
            assert any(path.startswith("pyro_hea.") and path.endswith(f".{name}") for path in documented), \
                f"{package}.{name} is exported but not documented"


def _commands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


@needs_docs
def test_cli_page_lists_every_command_and_option(site):
    from pyro_hea.cli import build_parser

    page = (site / "cli/index.html").read_text()
    commands = dict(_commands(build_parser()))
    assert len(commands) >= 5
    for name, sub in commands.items():
        assert f"pyro-hea {name}" in page, name
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"<code>{option}</code>" in page, f"pyro-hea {name} {option}"


@needs_docs
def test_tutorials_are_rendered_with_their_outputs(site):
    notebooks = sorted(ROOT.glob("tutorials/*.ipynb"))
    assert len(notebooks) == 4
    for nb in notebooks:
        html = (site / "tutorials" / nb.stem / "index.html").read_text()
        assert "jp-OutputArea" in html and "data:image/png;base64" in html, nb.name


@needs_docs
def test_the_cli_page_refuses_a_help_string_that_crashes_help():
    from mkdocs.exceptions import PluginError

    parser = argparse.ArgumentParser(prog="pyro-hea demo")
    parser.add_argument("--grid-min", type=float, help="lowest at.% of an element")
    with pytest.raises(PluginError, match="grid-min"):
        _hooks()._options_table(parser)


@needs_docs
def test_the_cli_tables_show_defaults_choices_and_groups():
    parser = argparse.ArgumentParser(prog="pyro-hea demo")
    parser.add_argument("run_dir", help="a run")
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no bar")
    group = parser.add_argument_group("latent")
    group.add_argument("--source", choices=("prior", "posterior"), default="prior")
    table = _hooks()._options_table(parser)
    assert "| `run_dir` |  | required | a run |" in table
    assert "| `--seed` `SEED` |  | `0` | seed (default 0) |" in table
    assert "| `--quiet` |  |  | no bar |" in table
    assert table.index("`--quiet`") < table.index("**Latent**") < table.index("`prior`, `posterior`")


@needs_docs
def test_reference_pages_follow_the_modules_on_disk():
    modules = _hooks().public_modules("pyro_hea.design")
    on_disk = {f"pyro_hea.design.{p.stem}" for p in (ROOT / "pyro_hea/design").glob("*.py")
               if not p.stem.startswith("_")}
    assert modules[0] == "pyro_hea.design" and set(modules[1:]) == on_disk
    top = _hooks().public_modules("pyro_hea")
    assert "pyro_hea.errors" in top and "pyro_hea.cli" in top and "pyro_hea._lazy" not in top
    assert not any(name.startswith("pyro_hea.design.") for name in top)


@needs_docs
def test_links_to_the_tutorials_work_on_github_and_on_the_site():
    links = _hooks()._tutorial_links
    assert links("[a](../tutorials/01_fit_and_check.ipynb#fit)", "model.md") == \
        "[a](tutorials/01_fit_and_check.ipynb#fit)"
    assert links("[a](../../tutorials/01_fit_and_check.ipynb)", "results/data_efficiency.md") == \
        "[a](../tutorials/01_fit_and_check.ipynb)"
    for untouched in ("[a](../tutorials/no_such.ipynb)", "[a](../../tutorials/01_fit_and_check.ipynb)"):
        assert links(untouched, "model.md") == untouched  # left for the strict link check


@needs_docs
def test_sphinx_roles_become_cross_references(tmp_path):
    import griffe

    spec = importlib.util.spec_from_file_location("roles", ROOT / "docs/_hooks/griffe_sphinx_roles.py")
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    roles.PACKAGE = "demo_hea"
    pkg = tmp_path / "demo_hea"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Top."""\n')
    (pkg / "space.py").write_text(
        '"""Spaces."""\n\n\ndef realize(x):\n    """Round."""\n\n\n'
        'class Box:\n    """See :meth:`score` and :func:`realize`, :class:`~demo_hea.space.Box`,\n'
        '    :class:`torch.nn.Module` and :func:`_private`. As written::\n\n        Box()\n    """\n\n'
        '    def score(self):\n        """Score."""\n')
    loaded = griffe.load("demo_hea", search_paths=[str(tmp_path)],
                         extensions=griffe.load_extensions(roles.SphinxRoles))
    doc = loaded["space.Box"].docstring.value
    assert "[`score()`][demo_hea.space.Box.score]" in doc
    assert "[`realize()`][demo_hea.space.realize]" in doc
    assert "[`Box`][demo_hea.space.Box]" in doc
    assert "`torch.nn.Module`" in doc and "[`torch" not in doc
    assert "`_private()`" in doc and ":func:" not in doc
    assert "As written:\n" in doc and "::" not in doc


# ---- docstring examples -----------------------------------------------------------------------

_SKIP = re.compile(r"#\s*doctest:\s*\+SKIP")
_REASON = re.compile(r">>>.*#\s*(?!doctest:)\S.*#\s*doctest:\s*\+SKIP")


def _unexplained_skips(text: str) -> list[int]:
    """Line numbers of ``+SKIP`` examples without a reason, on the line or on the first skipped
    line of the same run of example lines."""
    bad, explained = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith((">>>", "...")) or not _SKIP.search(line):
            explained = False
            continue
        explained = explained or bool(_REASON.search(stripped))
        if not explained:
            bad.append(number)
    return bad


def test_every_skipped_example_says_why():
    bad = []
    for path in sorted((ROOT / "pyro_hea").rglob("*.py")):
        bad += [f"{path.relative_to(ROOT)}:{n}" for n in _unexplained_skips(path.read_text())]
    assert not bad, ("a `# doctest: +SKIP` needs its reason beside it, e.g. "
                     "`>>> load_run('runs/pei2020')  # needs a trained run  # doctest: +SKIP`: "
                     + ", ".join(bad))


def test_the_skip_rule_itself():
    assert _unexplained_skips(">>> f()  # doctest: +SKIP\n") == [1]
    assert _unexplained_skips(">>> f()  # slow: trains a model  # doctest: +SKIP\n"
                              ">>> g()  # doctest: +SKIP\n") == []
    assert _unexplained_skips(">>> f()  # slow  # doctest: +SKIP\n\n>>> g()  # doctest: +SKIP\n") == [3]
    assert _unexplained_skips(">>> f()\n") == []


def test_docstring_examples_run_in_the_suite():
    text = (ROOT / "pyproject.toml").read_text()
    assert "--doctest-modules" in text and '"pyro_hea"' in text


def test_readme_points_to_the_docs_and_shows_a_figure():
    readme = (ROOT / "README.md").read_text()
    assert "mkdocs serve" in readme and "mkdocs build" in readme
    images = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+)\)", readme)
    assert images and all((ROOT / image).is_file() for image in images)
