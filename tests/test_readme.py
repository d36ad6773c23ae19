"""The README's first lines are the two commands a newcomer needs, and CI runs them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)]


def test_readme_opens_with_two_commands():
    head = README.split("pyro-hea is a [Pyro]")[0]
    blocks = _blocks(head)
    assert len(blocks) == 2, "the README must open with exactly two commands"
    install_and_run, test = blocks
    assert "\n" not in install_and_run and "\n" not in test, "each command is one line"
    install, _, run = install_and_run.partition(" && ")
    assert install.startswith("pip install torch==2.13.0 ") and '-e ".[' in install
    assert run.startswith("pyro-hea train ")
    assert test == "python -m pytest -n auto"


def test_ci_runs_the_readme_commands():
    """.ci/run reads the README's install step and test command (the same parser CI uses)."""
    script = (ROOT / ".ci" / "run").read_text()
    helper = script[script.index("block() {"):script.index("\n}\n") + 3]
    out = subprocess.run(["bash", "-c", f"set -e; cd {ROOT}; {helper}\nfirst=$(block 1); "
                          'echo "${first%% && pyro-hea *}"; block 2'],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    first, test = _blocks(README)[:2]
    assert out == [first.split(" && ")[0], test]


def test_installation_doc_matches_readme():
    install = _blocks(README)[0].split(" && ")[0]
    assert install in (ROOT / "docs" / "installation.md").read_text()
