"""`wippy init`: the scaffold lints clean, runs with `run -x`, and serves its HTTP endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import parse_id
from wippy.ops._cli import main
from wippy.ops._config import build_config
from wippy.ops._init import default_namespace
from wippy.ops._lint import lint_app
from wippy.services import Node, StateDir

FILES = ["src/_index.yaml", "src/hello.lua", "src/hello_http.lua", ".wippy.yaml", "README.md"]


def on_free_port(app: Path) -> None:
    """Let the test's server take any free port (other tests may hold 8080)."""
    index = app / "src" / "_index.yaml"
    text = index.read_text()
    assert 'addr: "127.0.0.1:8080"' in text
    index.write_text(text.replace('addr: "127.0.0.1:8080"', 'addr: "127.0.0.1:0"'))


def test_init_writes_an_app_that_lints_clean(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = tmp_path / "new"
    assert main(["init", str(app), "--name", "demo"]) == 0
    out = capsys.readouterr().out
    assert "wippy run -x demo:hello" in out
    assert sorted(p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file()) == sorted(FILES)
    assert "namespace: demo" in (app / "src" / "_index.yaml").read_text()
    assert main(["lint", "--app", str(app)]) == 0
    assert capsys.readouterr().out.startswith("ok: 6 entries, 2 Lua chunks checked, no problems")


def test_init_defaults_to_the_current_dir_and_its_name(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "My Shop"
    app.mkdir()
    (app / "LICENSE").write_text("MIT\n")  # other files are left alone
    monkeypatch.chdir(app)
    assert main(["init"]) == 0
    assert "namespace: my_shop" in (app / "src" / "_index.yaml").read_text()
    assert (app / "LICENSE").read_text() == "MIT\n"
    assert lint_app(app).problems == ()


@pytest.mark.parametrize("marker", ["src", "wippy.lock", ".wippy.yaml", "README.md"])
def test_init_refuses_a_dir_with_an_app_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           marker: str) -> None:
    if marker == "src":
        (tmp_path / "src").mkdir()
    else:
        (tmp_path / marker).write_text("mine\n")
    before = sorted(tmp_path.rglob("*"))
    assert main(["init", str(tmp_path)]) == 1
    assert f"already holds {marker}" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before


def test_init_refuses_a_file_and_a_bad_namespace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert main(["init", str(tmp_path / "f")]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "a"), "--name", "no spaces"]) == 2
    assert "is not a namespace" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


@given(st.text(max_size=30).filter(lambda s: "/" not in s and "\0" not in s and s not in (".", "..")))
def test_default_namespace_is_always_valid(name: str) -> None:
    ns = default_namespace(Path("/tmp") / name if name else Path("/tmp/x"))
    parse_id(f"{ns}:hello")


async def test_the_scaffold_runs_its_process(capfd: pytest.CaptureFixture[str], tmp_path: Path, nats_url: str,
                                             namespace: str) -> None:
    app = tmp_path / "app"
    assert main(["init", str(app), "--name", "demo"]) == 0
    on_free_port(app)
    capfd.readouterr()
    argv = ["run", "--app", str(app), "--nats", nats_url, "--namespace", namespace,
            "--state-dir", str(tmp_path / "state"), "-x", "demo:hello", "Ada"]
    assert await asyncio.to_thread(main, argv) == 0
    assert "Hello, Ada!" in capfd.readouterr().out


async def test_the_scaffold_serves_hello_over_http(tmp_path: Path, nats_url: str, namespace: str) -> None:
    app = tmp_path / "app"
    assert main(["init", str(app), "--name", "demo"]) == 0
    on_free_port(app)
    cfg = build_config(app_dir=str(app), state_dir=str(tmp_path / "state"), nats=nats_url, node="n1",
                       namespace=namespace, sync_interval=None, json_output=False, verbose=False, environ={})
    state = StateDir(cfg.runtime.state_dir)
    assert state.try_own()
    try:
        async with Node(cfg.runtime, state) as node:
            await node.registry.apply_files(app)
            await node.start_services()
            assert node.http is not None
            port = node.http.port("demo:server")
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/hello", params={"name": "Ada"}) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"greeting": "Hello, Ada!"}
                async with session.get(f"http://127.0.0.1:{port}/hello") as resp:
                    assert await resp.json() == {"greeting": "Hello, world!"}
    finally:
        state.release()
