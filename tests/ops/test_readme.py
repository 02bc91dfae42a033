"""The README never lies: its two setup commands are the ones CI and the example use."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sh_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_the_test_command_is_what_ci_runs() -> None:
    blocks = sh_blocks()
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_the_main_command_runs_an_example_that_exists() -> None:
    run_cmd = next(b for b in sh_blocks() if "wippy run" in b)
    assert "pip install ." in run_cmd
    app = re.search(r"wippy run --app (\S+)", run_cmd)
    assert app is not None
    assert (REPO / app.group(1) / "src" / "_index.yaml").is_file()
