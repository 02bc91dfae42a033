"""The registry commands, end to end through the installed `wippy` command."""

from __future__ import annotations

from pathlib import Path

from .conftest import Wippy, Write


def test_apply_list_show_and_unchanged(wippy: Wippy, app: Path) -> None:
    first = wippy.json("registry", "apply", str(app), "-m", "first")
    assert set(first) == {"version"}
    again = wippy.json("registry", "apply", str(app))
    assert again == {"version": first["version"], "changed": False}

    entries = wippy.json("registry", "list")
    ids = [e["id"] for e in entries]
    assert "hello.api:hello.endpoint" in ids and "hello:greeting.en" in ids
    endpoint = wippy.json("registry", "show", "hello.api:hello.endpoint")
    assert endpoint["kind"] == "http.endpoint"
    assert endpoint["meta"]["router"] == "hello.api:router"  # bare name resolved
    assert endpoint["data"]["func"] == "hello.api:hello"
    handler = wippy.json("registry", "show", "hello.api:hello")
    assert "http.response()" in handler["data"]["source"]  # file:// source stored with the entry

    only = wippy.json("registry", "list", "--kind", "http.*", "--ns", "hello.api")
    assert {e["kind"] for e in only} == {"http.service", "http.router", "http.endpoint"}
    text = wippy("registry", "list").stdout
    assert "hello:greeting.en" in text and "KIND" in text


def test_versions_history_diff_rollback_and_at(wippy: Wippy, app: Path, write: Write) -> None:
    v1 = wippy.json("registry", "apply", "-m", "first")["version"]
    index = app / "src" / "_index.yaml"
    index.write_text(index.read_text().replace("Hello, {name}!", "Hi, {name}!"))
    write("src/extra.yaml", "namespace: extra\nentries:\n  - name: x\n    kind: registry.entry\n    v: 1\n")
    v2 = wippy.json("registry", "apply", "-m", "second")["version"]
    assert v2 > v1

    versions = wippy.json("registry", "versions")
    assert [v["version"] for v in versions] == [v1, v2]
    assert versions[1]["message"] == "second" and versions[1]["author"] == "user:tester"
    assert {"op": "create", "id": "extra:x"} in versions[1]["ops"]

    hist = wippy.json("registry", "history", "hello:greeting.en")
    assert [(h["version"], h["op"]) for h in hist] == [(v1, "create"), (v2, "update")]

    diff = wippy.json("registry", "diff", str(v1), str(v2))
    assert [(d["op"], d["id"]) for d in diff] == [("create", "extra:x"), ("update", "hello:greeting.en")]
    assert diff[1]["before"]["data"]["text"] == "Hello, {name}!"

    old = wippy.json("registry", "show", "hello:greeting.en", "--at", str(v1))
    assert old["data"]["text"] == "Hello, {name}!"
    assert wippy("registry", "show", "extra:x", "--at", str(v1), check=False).returncode == 1

    v3 = wippy.json("registry", "rollback", str(v1), "-m", "undo")["version"]
    assert v3 > v2
    assert wippy.json("registry", "list") == wippy.json("registry", "list", "--at", str(v1))
    assert wippy.json("registry", "list", "--at", str(v2)) != wippy.json("registry", "list")


def test_query_with_and_without_at(wippy: Wippy, app: Path) -> None:
    v1 = wippy.json("registry", "apply")["version"]
    (app / "src" / "extra.yaml").write_text("namespace: extra\nentries:\n  - name: x\n    kind: registry.entry\n")
    wippy.json("registry", "apply")
    rows = wippy.json("query", "SELECT kind, count(*) AS n FROM registry_entries GROUP BY kind ORDER BY kind")
    assert {"kind": "registry.entry", "n": 3} in rows
    at = wippy.json("query", "SELECT count(*) AS n FROM registry_entries WHERE ns = 'extra'", "--at", str(v1))
    assert at == [{"n": 0}]
    meta = wippy.json("query", "SELECT meta FROM registry_entries WHERE id = 'hello:greeting.fr'")
    assert meta == [{"meta": {"type": "greeting", "title": "French"}}]  # JSON columns come back decoded
    table = wippy("query", "SELECT id FROM registry_entries ORDER BY id LIMIT 2").stdout
    assert table.splitlines()[0].strip() == "id"


def test_bad_input_is_a_clear_error_and_nothing_is_applied(wippy: Wippy, app: Path, write: Write) -> None:
    v1 = wippy.json("registry", "apply")["version"]

    bad = write("src/broken.yaml", "namespace: broken\nentries:\n  - name: a\n    kind: [unclosed\n")
    r = wippy("registry", "apply", check=False)
    assert r.returncode == 1
    assert "src/broken.yaml:4: invalid YAML" in r.stderr
    bad.unlink()

    write("src/dangling.yaml", "namespace: d\nentries:\n  - name: r\n    kind: http.router\n"
                               "    meta:\n      server: nowhere\n")
    r = wippy("registry", "apply", check=False)
    assert r.returncode == 1
    assert "src/dangling.yaml" in r.stderr and "d:r" in r.stderr and "meta.server" in r.stderr
    assert "d:nowhere" in r.stderr
    (app / "src" / "dangling.yaml").unlink()

    write("src/dup.yaml", "namespace: hello\nentries:\n  - name: greeting.en\n    kind: registry.entry\n")
    r = wippy("registry", "apply", check=False)
    assert r.returncode == 1
    assert "hello:greeting.en" in r.stderr and "src/dup.yaml" in r.stderr
    (app / "src" / "dup.yaml").unlink()

    r = wippy("registry", "rollback", "999999", check=False)
    assert r.returncode == 1 and "999999" in r.stderr

    r = wippy("query", "DELETE FROM registry_entries", check=False)
    assert r.returncode == 1 and "read-only" in r.stderr

    assert [v["version"] for v in wippy.json("registry", "versions")] == [v1]


def test_unknown_kind_is_stored_with_a_warning(wippy: Wippy, write: Write) -> None:
    write("src/odd.yaml", "namespace: odd\nentries:\n  - name: thing\n    kind: my.kind\n")
    r = wippy("registry", "apply")
    assert "unknown kind 'my.kind'" in r.stderr
    assert wippy.json("registry", "show", "odd:thing")["kind"] == "my.kind"
