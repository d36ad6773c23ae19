"""MkDocs hooks that generate the parts of the site that must not drift from the code.

- ``<!-- api-modules: PACKAGE -->`` in a page becomes one mkdocstrings block per public module
  of ``PACKAGE`` (found by walking the source tree, so modules that are added, split or renamed
  appear without editing the page);
- ``<!-- cli-reference -->`` becomes the options of every ``pyro-hea`` command, read from the
  argparse parsers in :mod:`pyro_hea.cli`;
- the notebooks in ``tutorials/`` (outside ``docs/``) are added to the site as
  ``tutorials/*.ipynb`` for mkdocs-jupyter to render with their committed outputs.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"

_API = re.compile(r"^<!-- api-modules: ([\w.]+) -->$", re.MULTILINE)
_CLI = "<!-- cli-reference -->"
_TUTORIAL_LINK = re.compile(r"\]\(((?:\.\./)+)tutorials/([\w.-]+\.ipynb)((?:#[^)]*)?)\)")


# ---- tutorials --------------------------------------------------------------------------------

@event_priority(100)  # before mkdocs-jupyter claims the notebooks
def on_files(files, config):
    for nb in sorted(TUTORIALS.glob("*.ipynb")):
        files.append(File(f"tutorials/{nb.name}", str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files


# ---- API reference ----------------------------------------------------------------------------

def public_modules(package: str) -> list[str]:
    """Dotted names of the public modules of ``package`` (``pyro_hea`` or a subpackage), itself first.

    For ``pyro_hea`` these are its top-level modules (each subpackage has a page of its own); for
    a subpackage, every public module below it. Names starting with ``_`` are private.
    """
    parts = package.split(".")
    folder = ROOT.joinpath(*parts)
    if package == "pyro_hea":
        found = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    else:
        found = [p for p in folder.rglob("*.py") if p.name != "__init__.py"]
    names = [package]
    for path in sorted(found):
        rel = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") for part in rel):
            continue
        names.append(".".join(rel))
    return names


def api_markdown(package: str) -> str:
    blocks = []
    for name in public_modules(package):
        if name == package and package != "pyro_hea":
            # The subpackage page opens with the subpackage docstring; its names are re-exported
            # lazily and documented once, in the module that defines them.
            blocks.append(f"::: {name}\n    options:\n      members: false\n      show_root_heading: false\n")
        else:
            blocks.append(f"::: {name}\n")
    return "\n".join(blocks)


# ---- command line -----------------------------------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def _cell(text) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def _row(parser: argparse.ArgumentParser, formatter, action: argparse.Action) -> str:
    if action.option_strings:
        name = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            name += f" `{action.metavar or action.dest.upper()}`"
    else:
        name = f"`{action.metavar or action.dest}`"
    if action.choices is not None and not isinstance(action.choices, dict):
        values = ", ".join(f"`{c}`" for c in action.choices)
    else:
        values = ""
    default = action.default
    if action.required or not action.option_strings:
        default_text = "required"
    elif default is None or default is False or default is argparse.SUPPRESS or default == "" \
            or action.nargs == 0:
        default_text = ""
    else:
        default_text = f"`{default}`"
    try:
        help_text = formatter._expand_help(action) if action.help else ""
    except (TypeError, ValueError, KeyError) as err:  # what `--help` would crash on
        option = "/".join(action.option_strings) or action.dest
        raise PluginError(f"the help of `{parser.prog} {option}` is not a valid argparse help "
                          f"string (write a literal % as %%): {err}") from None
    return f"| {name} | {_cell(values)} | {_cell(default_text)} | {_cell(help_text)} |"


_HEADER = "| option | choices | default | description |\n|---|---|---|---|\n"
_PLAIN_GROUPS = ("positional arguments", "options", "optional arguments")


def _options_table(parser: argparse.ArgumentParser) -> str:
    """The options of ``parser`` as Markdown tables, one per argument group (as in ``--help``)."""
    formatter = parser._get_formatter()  # expands %(default)s etc. as --help does
    plain, out = [], []
    for group in parser._action_groups:
        rows = [_row(parser, formatter, a) for a in group._group_actions
                if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if not rows:
            continue
        if group.title in _PLAIN_GROUPS:
            plain += rows  # positionals and general options: one table, first
            continue
        out.append(f"**{group.title[:1].upper()}{group.title[1:]}**"
                   + (f": {group.description}" if group.description else "") + "\n")
        out.append(_HEADER + "\n".join(rows) + "\n")
    if plain:
        out.insert(0, _HEADER + "\n".join(plain) + "\n")
    return "\n".join(out)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def cli_markdown() -> str:
    """The Markdown for every ``pyro-hea`` command, read from the argparse parsers."""
    from pyro_hea.cli import build_parser

    parser = build_parser()
    out = [f"```text\n{_usage(parser)}\n```\n", _options_table(parser)]
    for name, help_text, sub in _subcommands(parser):
        out.append(f"## `pyro-hea {name}`\n")
        text = sub.description or help_text  # the description says more, when there is one
        if text:
            text = _cell(text)
            out.append(text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".") + "\n")
        out.append(f"```text\n{_usage(sub)}\n```\n")
        out.append(_options_table(sub))
        if sub.epilog:
            out.append(sub.epilog + "\n")
    return "\n".join(out)


def _tutorial_links(markdown: str, src_uri: str) -> str:
    """Point links such as ``../tutorials/01_fit_and_check.ipynb`` (right on GitHub, outside
    ``docs/``) at the notebook's page on the site."""
    depth = src_uri.count("/")

    def fix(match: re.Match) -> str:
        ups, name, anchor = match.groups()
        if len(ups) // 3 != depth + 1 or not (TUTORIALS / name).is_file():
            return match.group(0)  # not a link to tutorials/: leave it for the link check
        return f"]({'../' * depth}tutorials/{name}{anchor})"

    return _TUTORIAL_LINK.sub(fix, markdown)


def on_page_markdown(markdown, page, config, files):
    markdown = _tutorial_links(markdown, page.file.src_uri)
    markdown = _API.sub(lambda m: api_markdown(m.group(1)), markdown)
    if _CLI in markdown:
        markdown = markdown.replace(_CLI, cli_markdown())
    return markdown
