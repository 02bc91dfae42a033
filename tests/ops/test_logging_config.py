"""`.wippy.yaml` logger.encoding and logmanager.min_level: how the runtime's log lines look and
which ones are written."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from wippy.core import ConfigError
from wippy.ops._config import CliConfig, build_config
from wippy.ops._logging import setup_logging


def _config(tmp_path: Path, yaml: str | None) -> CliConfig:
    if yaml is not None:
        (tmp_path / ".wippy.yaml").write_text(yaml)
    return build_config(app_dir=str(tmp_path), state_dir=None, nats=None, node=None, namespace=None,
                        sync_interval=None, json_output=False, verbose=False, environ={})


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_defaults(tmp_path: Path) -> None:
    cfg = _config(tmp_path, None)
    assert (cfg.log_encoding, cfg.log_level) == ("json", None)


@pytest.mark.parametrize(("level", "expected"), [(-1, logging.DEBUG), (0, logging.INFO), (1, logging.WARNING),
                                                 (2, logging.ERROR)])
def test_min_level(tmp_path: Path, level: int, expected: int) -> None:
    assert _config(tmp_path, f"logmanager:\n  min_level: {level}\n").log_level == expected


@pytest.mark.parametrize(("yaml", "message"), [
    ("logger:\n  encoding: xml\n", "logger.encoding must be json or console"),
    ("logger: [1]\n", "logger: expected a mapping"),
    ("logmanager:\n  min_level: 3\n", "min_level must be -1"),
    ("logmanager:\n  min_level: true\n", "min_level must be -1"),
    ("logmanager:\n  min_level: info\n", "min_level must be -1"),
])
def test_mistakes_name_the_key(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, yaml)


def test_json_and_console_lines(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    setup_logging(verbose=False, encoding="json", level=logging.INFO)
    logging.getLogger("wippy.lua").info("order placed", extra={"fields": {"pid": "{n|1}", "amount": 3}})
    logging.getLogger("wippy.lua").debug("hidden")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["msg"], record["pid"], record["amount"]) == \
        ("info", "wippy.lua", "order placed", "{n|1}", 3)

    setup_logging(verbose=False, encoding="console", level=logging.DEBUG)
    logging.getLogger("wippy.lua").debug("order placed", extra={"fields": {"pid": "{n|1}"}})
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith('DEBUG   wippy.lua  order placed  {"pid":"{n|1}"}')


def test_the_config_level_wins_over_the_command_default(capsys: pytest.CaptureFixture[str],
                                                        restore_logging: None) -> None:
    setup_logging(verbose=False, default_level=logging.WARNING, level=logging.INFO)
    logging.getLogger("wippy.lua").info("seen")
    assert "seen" in capsys.readouterr().err
    setup_logging(verbose=True, default_level=logging.WARNING, level=logging.ERROR)
    logging.getLogger("wippy.lua").debug("verbose wins")
    assert "verbose wins" in capsys.readouterr().err


def test_fields_never_replace_the_line_keys(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    setup_logging(verbose=False, encoding="json", level=logging.INFO)
    logging.getLogger("wippy.lua").warning("parsed", extra={"fields": {"level": "ERROR", "msg": "x", "user": "bob"}})
    record = json.loads(capsys.readouterr().err)
    assert (record["level"], record["msg"], record["field.level"], record["field.msg"], record["user"]) == \
        ("warning", "parsed", "ERROR", "x", "bob")
