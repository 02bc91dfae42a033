"""The env registry: storages, variables, placeholders in entry data, and the token store's key."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import (
    Changeset,
    DefinitionError,
    DefinitionErrors,
    Entry,
    Grant,
    JetStreamEventStore,
    NotFoundError,
    NotImplementedFeatureError,
    Op,
    PermissionDeniedError,
    Subjects,
    TokenService,
    resolve_entry,
    resolve_entry_data,
)
from wippy.lua_stdlib import parse_go_duration
from wippy.ops._config import build_config
from wippy.projections import ProjectionDB, RegistryProjection
from wippy.services import EnvService, RegistryService
from wippy.services._env_storages import EnvStorageError
from wippy.services._stores import StoreHub


class Reg:
    """A registry reader over fixed entries (no version: the env index is rebuilt on every call)."""

    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        return self.entries

    def put(self, *entries: Entry) -> None:
        for e in entries:
            self.entries[e.id] = e


def var(eid: str, storage: str, name: str | None = None, **data: Any) -> Entry:
    d: dict[str, Any] = {"storage": storage, **data}
    if name is not None:
        d["variable"] = name
    return Entry(eid, "env.variable", {}, d)


OS = Entry("app:os", "env.storage.os", {}, {})
MEM = Entry("app:mem", "env.storage.memory", {}, {})
STATIC = Entry("app:consts", "env.storage.static", {}, {"values": {"REGION": "eu", "RETRIES": 3}})


def file_storage(path: str, **data: Any) -> Entry:
    return Entry("app:file", "env.storage.file", {}, {"file_path": path, **data})


# -- storages and variables -----------------------------------------------------------------------
def test_os_memory_static_and_defaults() -> None:
    reg = Reg(OS, MEM, STATIC, var("app:home", "app:os", "HOME"), var("app:port", "app:os", "PORT", default="8080"),
              var("app:level", "app:mem", "LOG_LEVEL", default="info"), var("app:region", "app:consts", "REGION"),
              var("app:retries", "app:consts", "RETRIES"))
    env = EnvService(reg, environ={"HOME": "/home/u", "SECRET": "s3"})
    assert env.get("HOME") == "/home/u"
    assert env.get("app:home") == "/home/u"  # by entry id
    assert env.get("PORT") == "8080"  # unset: the default
    assert env.get("REGION") == "eu" and env.get("RETRIES") == "3"
    assert env.get("LOG_LEVEL") == "info"
    env.set("LOG_LEVEL", "debug")
    assert env.get("LOG_LEVEL") == "debug"
    env.set("LOG_LEVEL", "")  # an empty value counts as unset
    assert env.get("LOG_LEVEL") == "info"
    with pytest.raises(NotFoundError, match="SECRET not found"):
        env.get("SECRET")  # an OS variable no env.variable names is not reachable
    with pytest.raises(PermissionDeniedError, match="app:os is read-only"):
        env.set("HOME", "/x")
    with pytest.raises(PermissionDeniedError, match="app:consts is read-only"):
        env.set("REGION", "us")


def test_read_only_variables_both_spellings() -> None:
    reg = Reg(MEM, var("app:a", "app:mem", "A", default="1", readonly=True),
              var("app:b", "app:mem", "B", default="2", read_only=True))
    env = EnvService(reg)
    for name in ("A", "B", "app:a"):
        with pytest.raises(PermissionDeniedError, match="read-only"):
            env.set(name, "x")
    assert env.get("A") == "1"


def test_private_variables_and_names() -> None:
    other = var("other:token", "app:mem", "TOKEN")
    reg = Reg(MEM, var("app:secret", "app:mem", default="hidden"), var("app:token", "app:mem", "TOKEN"), other)
    env = EnvService(reg)
    assert env.get("app:secret") == "hidden"
    with pytest.raises(NotFoundError):
        env.get("secret")  # a private variable has no public name
    assert env.get("secret", ns="app") == "hidden"  # a bare name in the caller's namespace
    env.set("TOKEN", "first")  # the first variable to claim a name keeps it
    assert env.get("app:token") == "first"
    env.set("other:token", "second")  # the later one is reachable by id (same storage key though)
    assert env.get("TOKEN") == "second"
    assert env.variable("TOKEN") is not None and env.variable("TOKEN").id == "app:token"  # type: ignore[union-attr]


def test_a_changed_registry_is_seen_at_once() -> None:
    reg = Reg(MEM)
    env = EnvService(reg)
    with pytest.raises(NotFoundError):
        env.get("LATE")
    reg.put(var("app:late", "app:mem", "LATE", default="here"))
    assert env.get("LATE") == "here"


def test_bad_variables_and_storages() -> None:
    reg = Reg(MEM, var("app:lost", "app:nowhere", "LOST"), var("app:odd", "app:fn", "ODD"),
              Entry("app:fn", "function.lua", {}, {"source": "return 1"}))
    env = EnvService(reg)
    with pytest.raises(NotFoundError, match="env storage app:nowhere does not exist"):
        env.get("LOST")
    with pytest.raises(DefinitionError, match=r"app:fn is a function\.lua, not an env storage"):
        env.get("ODD")


def test_kind_checks_name_entry_and_field() -> None:
    from wippy.core._env import env_entry_errors

    cases = [
        (Entry("app:v", "env.variable", {}, {"variable": "X"}), "storage"),
        (Entry("app:v", "env.variable", {}, {"storage": "app:m", "variable": "no-dash"}), "variable"),
        (Entry("app:v", "env.variable", {}, {"storage": "app:m", "readonly": "yes"}), "readonly"),
        (Entry("app:v", "env.variable", {}, {"storage": "app:m", "default": {"a": 1}}), "default"),
        (Entry("app:f", "env.storage.file", {}, {}), "file_path"),
        (Entry("app:f", "env.storage.file", {}, {"file_path": "x.env", "file_mode": "rw"}), "file_mode"),
        (Entry("app:r", "env.storage.router", {}, {"storages": []}), "storages"),
        (Entry("app:s", "env.storage.static", {}, {"values": ["A"]}), "values"),
    ]
    for entry, fieldname in cases:
        errors = env_entry_errors(entry)
        assert len(errors) == 1, entry
        assert errors[0].entry == entry.id and errors[0].field == fieldname, errors[0]
    assert env_entry_errors(Entry("app:f", "env.storage.file", {}, {"file_path": "a.env", "file_mode": 0o600})) == []


# -- file storage ---------------------------------------------------------------------------------
def test_file_storage_reads_like_wippy(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text(
        "# comment\n\nNAME = Demo App  \nQUOTED=\"kept as is\"\nINLINE=value # a comment\nNAME=second\nBROKEN\n")
    reg = Reg(file_storage("app.env"), var("app:n", "app:file", "NAME"), var("app:q", "app:file", "QUOTED"),
              var("app:i", "app:file", "INLINE"))
    env = EnvService(reg, base_dir=tmp_path)
    assert env.get("NAME") == "Demo App"  # the first line naming a key wins
    assert env.get("QUOTED") == '"kept as is"'
    assert env.get("INLINE") == "value"
    (tmp_path / "app.env").write_text("NAME=changed on disk\n")
    assert env.get("NAME") == "changed on disk"


def test_file_storage_writes_atomically_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "app.env"
    reg = Reg(file_storage("cfg/app.env", auto_create=True, file_mode=0o600), var("app:a", "app:file", "A"),
              var("app:b", "app:file", "B"))
    env = EnvService(reg, base_dir=tmp_path)
    with pytest.raises(NotFoundError):
        env.get("A")  # no file yet: unset
    env.set("A", "1")
    assert path.read_text() == "A=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("# header\nA=1 # the first\nB=2\n")
    env.set("A", "one")
    env.set("B", "two")
    assert path.read_text() == "# header\nA=one # the first\nB=two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.env"]  # no temp files left
    with pytest.raises(DefinitionError, match="line break or '#'"):
        env.set("A", "a # b")
    assert env.get("A") == "one"


def test_file_storage_errors(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    reg = Reg(file_storage("missing.env"), var("app:a", "app:file", "A"))
    env = EnvService(reg, base_dir=tmp_path)
    with pytest.raises(EnvStorageError, match="does not exist \\(set auto_create"):
        env.set("A", "1")  # without auto_create the file must exist
    reg.put(file_storage("adir"))
    with pytest.raises(EnvStorageError, match="app:file: cannot read") as info:
        env.get("A")
    assert info.value.kind == "UNAVAILABLE"


async def test_async_set_writes_the_file_off_the_loop(tmp_path: Path) -> None:
    reg = Reg(file_storage("x.env", auto_create=True), MEM, var("app:a", "app:file", "A"),
              var("app:m", "app:mem", "M"))
    env = EnvService(reg, base_dir=tmp_path)
    await env.aset("A", "async")
    await env.aset("M", "mem")
    assert (tmp_path / "x.env").read_text() == "A=async\n"
    assert env.get("M") == "mem"
    with pytest.raises(PermissionDeniedError):
        await EnvService(Reg(OS, var("app:o", "app:os", "O"))).aset("O", "x")


# -- routers --------------------------------------------------------------------------------------
def test_router_reads_in_order_caches_and_writes_first(tmp_path: Path) -> None:
    (tmp_path / "f.env").write_text("LEVEL=warn\nNAME=file\n")
    router = Entry("app:chain", "env.storage.router", {}, {"storages": ["app:mem", "app:file", "app:os"]})
    reg = Reg(MEM, OS, file_storage("f.env"), router, var("app:level", "app:chain", "LEVEL"),
              var("app:user", "app:chain", "USER"), var("app:name", "app:chain", "NAME"))
    env = EnvService(reg, environ={"USER": "u1", "LEVEL": "os-level"}, base_dir=tmp_path)
    assert env.get("LEVEL") == "warn"  # memory has none, the file has it (before the OS)
    assert env.get("USER") == "u1"
    assert env.get("NAME") == "file"
    env.set("LEVEL", "debug")
    assert env.get("LEVEL") == "debug"
    assert env.storage("app:mem").get("LEVEL") == "debug"  # writes go to the first storage
    assert "debug" not in (tmp_path / "f.env").read_text()
    (tmp_path / "f.env").write_text("NAME=changed\n")
    assert env.get("NAME") == "file"  # a router remembers what it found, as in Wippy


def test_router_errors() -> None:
    loop_a = Entry("app:ra", "env.storage.router", {}, {"storages": ["app:rb"]})
    loop_b = Entry("app:rb", "env.storage.router", {}, {"storages": ["app:ra"]})
    ro = Entry("app:ro", "env.storage.router", {}, {"storages": ["app:os", "app:mem"]})
    reg = Reg(OS, MEM, loop_a, loop_b, ro, var("app:x", "app:ra", "X"), var("app:y", "app:ro", "Y"))
    env = EnvService(reg)
    with pytest.raises(DefinitionError, match="routes to itself"):
        env.get("X")
    with pytest.raises(DefinitionError, match="routes to itself"):
        env.set("X", "1")
    with pytest.raises(PermissionDeniedError, match="app:os is read-only"):
        env.set("Y", "1")  # the first storage takes writes, and it is read-only


def test_get_all_lists_storages_and_variables(tmp_path: Path) -> None:
    (tmp_path / "f.env").write_text("FROM_FILE=1\nLEVEL=warn\n")
    reg = Reg(OS, MEM, file_storage("f.env"), var("app:level", "app:mem", "LEVEL", default="info"),
              var("app:port", "app:os", "PORT", default="8080"), var("app:secret", "app:mem", default="s"))
    env = EnvService(reg, environ={"PATH": "/bin"}, base_dir=tmp_path)
    everything = env.all()
    assert everything == {"PATH": "/bin", "FROM_FILE": "1", "LEVEL": "info", "PORT": "8080", "app:secret": "s"}
    env.set("LEVEL", "debug")
    assert env.all()["LEVEL"] == "debug"


# -- placeholders ---------------------------------------------------------------------------------
VALUES = {"PORT": "9090", "NAME": "demo", "app.env:tls": "CERT", "FLAG": "true", "EMPTY": "", "RATIO": "0.5"}


def lookup(name: str) -> str | None:
    return VALUES.get(name)


def resolve(data: dict[str, Any], entry: str = "app.svc:api") -> dict[str, Any]:
    return resolve_entry_data(data, lookup, entry_id=entry)


def test_placeholder_forms() -> None:
    out = resolve({
        "a": "${env:NAME}", "b": "${env:MISSING|fallback}", "c": "${NAME|x}", "d": "${MISSING|x}",
        "e": "${NAME:-x}", "f": "${MISSING:-with spaces}", "g": "${VAR}", "h": "$${env:NAME}",
        "i": "http://${env:NAME}:${env:PORT}/x", "j": "${env:app.env:tls}", "k": "${lower|x}",
        "l": "cost $5 ${", "m": "${env:EMPTY|dflt}",
    })
    assert out == {"a": "demo", "b": "fallback", "c": "demo", "d": "x", "e": "demo", "f": "with spaces",
                   "g": "${VAR}", "h": "${env:NAME}", "i": "http://demo:9090/x", "j": "CERT", "k": "${lower|x}",
                   "l": "cost $5 ${", "m": "dflt"}


def test_whole_field_placeholders_take_the_type_of_their_default() -> None:
    out = resolve({"port": "${env:PORT|8080}", "sport": '${env:PORT|"8080"}', "other": "${env:MISSING|8080}",
                   "flag": "${env:FLAG|false}", "ratio": "${env:RATIO|1.5}", "plain": "${env:PORT}",
                   "mixed": ":${env:PORT|8080}"})
    assert out == {"port": 9090, "sport": "9090", "other": 8080, "flag": True, "ratio": 0.5, "plain": "9090",
                   "mixed": ":9090"}
    with pytest.raises(DefinitionError, match="not an integer") as info:
        resolve({"n": "${env:NAME|1}"})
    assert info.value.field == "n"


def test_missing_variables_name_entry_and_field() -> None:
    with pytest.raises(DefinitionError) as info:
        resolve({"tls": {"certs": ["ok", "${env:NOPE}"]}})
    assert info.value.entry == "app.svc:api" and info.value.field == "tls.certs[1]"
    assert "names no env variable" in str(info.value)
    with pytest.raises(DefinitionError, match="has no value and no default"):
        resolve({"x": "${env:EMPTY}"})


def test_env_directives_and_opaque_fields() -> None:
    out = resolve({"password": "inline", "password_env": "NAME", "cert_env": "app.env:tls",
                   "key": "kept", "key_env": "EMPTY", "access_env": "NOT_A_VARIABLE",
                   "source": "print('${env:NAME}')", "nested": {"token_env": "PORT"}})
    assert out == {"password": "demo", "cert": "CERT", "key": "kept", "access_env": "NOT_A_VARIABLE",
                   "source": "print('${env:NAME}')", "nested": {"token": "9090"}}


def test_bare_ids_resolve_in_the_entry_namespace() -> None:
    assert resolve({"c": "${env:tls}", "d_env": "tls"}, entry="app.env:svc") == {"c": "CERT", "d": "CERT"}


def test_resolve_entry_keeps_the_stored_entry() -> None:
    entry = Entry("app:svc", "http.service", {"m": "${env:NAME}"}, {"addr": ":${env:PORT|8080}"})
    resolved = resolve_entry(entry, lookup)
    assert resolved.data == {"addr": ":9090"} and resolved.meta == {"m": "${env:NAME}"}
    assert entry.data == {"addr": ":${env:PORT|8080}"}
    plain = Entry("app:p", "registry.entry", {}, {"x": 1})
    assert resolve_entry(plain, lookup) is plain


names = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)
literals = st.text(alphabet=st.characters(blacklist_characters="${}"), max_size=12)


@given(st.lists(st.tuples(literals, names, st.booleans(), st.text(alphabet="abc xyz-", max_size=6)), max_size=4),
       literals)
def test_mixed_text_resolves_piece_by_piece(parts: list[tuple[str, str, bool, str]], tail: str) -> None:
    known = {name: f"<{name}>" for _, name, is_set, _ in parts if is_set}
    text, want = "", ""
    for lit, name, _set, default in parts:
        text += f"{lit}${{env:{name}|{default}}}"
        want += lit + known.get(name, default)
    text += tail
    want += tail
    if not parts:
        return
    got = resolve_entry_data({"f": "x" + text}, known.get, entry_id="app:e")
    assert got == {"f": "x" + want}


@given(st.text(max_size=40))
def test_escaped_text_resolves_to_itself(text: str) -> None:
    escaped = text.replace("${", "$${")
    assert resolve_entry_data({"f": escaped}, lookup, entry_id="app:e") == {"f": text}


@given(st.text(alphabet="${}|:-envABC_ a", max_size=30))
def test_arbitrary_text_resolves_or_fails_clearly(text: str) -> None:
    failure: DefinitionError | None = None
    try:
        out = resolve_entry_data({"f": text}, lookup, entry_id="app:e")
    except DefinitionError as exc:
        failure = exc
    if failure is not None:
        assert (failure.entry, failure.field) == ("app:e", "f")
    elif "${" not in text:
        assert out == {"f": text}


# -- token stores and the wiring -------------------------------------------------------------------
async def test_token_store_key_from_env() -> None:
    kv = Entry("app:kv", "store.memory", {}, {})
    by_placeholder = Entry("app:t1", "security.token_store", {}, {"store": "app:kv", "token_key": "${env:KEY}"})
    by_directive = Entry("app:t2", "security.token_store", {}, {"store": "app:kv", "token_key_env": "app:key"})
    shell = Entry("app:t3", "security.token_store", {}, {"store": "app:kv", "token_key": "${KEY:-fallback}"})
    missing = Entry("app:t4", "security.token_store", {}, {"store": "app:kv", "token_key": "${env:NOPE}"})
    reg = Reg(kv, MEM, var("app:key", "app:mem", "KEY", default="k3y"), by_placeholder, by_directive, shell,
              missing)
    env = EnvService(reg)
    tokens = TokenService(reg, StoreHub(reg), parse_go_duration, env=env.lookup)
    grant = Grant("u1", {}, ())
    for store in ("app:t1", "app:t2", "app:t3"):
        token = await tokens.create(store, grant, expiration="1h")
        assert "." in token  # signed with the key from the env
        assert await tokens.validate(store, token) == grant
    with pytest.raises(DefinitionError) as info:
        await tokens.create("app:t4", grant)
    assert info.value.entry == "app:t4" and info.value.field == "token_key"
    without_env = TokenService(reg, StoreHub(reg), parse_go_duration)
    with pytest.raises(NotImplementedFeatureError, match="env service"):
        await without_env.create("app:t1", grant)


def test_ops_passes_the_os_environment_and_app_dir(tmp_path: Path) -> None:
    cfg = build_config(app_dir=str(tmp_path), state_dir=None, nats=None, node=None, namespace=None,
                       sync_interval=None, json_output=False, verbose=False, environ={"HOME": "/h", "X": "1"})
    assert cfg.runtime.environ == {"HOME": "/h", "X": "1"}
    assert cfg.runtime.app_dir == tmp_path.resolve()


# -- on the real registry service -----------------------------------------------------------------
@pytest.fixture
async def svc(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[RegistryService]:
    store = await JetStreamEventStore.connect(nats_url, Subjects(namespace))
    await store.provision()
    db = ProjectionDB(tmp_path / "p.duckdb")
    proj = RegistryProjection(store, db)
    try:
        await proj.start()
        yield RegistryService(proj, node="n1")
    finally:
        await proj.aclose()
        db.close()
        await store.aclose()


async def apply(svc: RegistryService, *entries: Entry) -> None:
    ops = tuple(Op("update" if svc.get(e.id) else "create", e.id, e) for e in entries)
    await svc.apply(Changeset(ops=ops))


async def test_new_versions_are_visible_and_bad_entries_rejected(svc: RegistryService) -> None:
    env = EnvService(svc, environ={"HOME": "/h"})
    await apply(svc, OS, MEM, var("app:home", "app:os", "HOME"))
    assert env.get("HOME") == "/h"
    await apply(svc, var("app:level", "app:mem", "LEVEL", default="info"))
    assert env.get("LEVEL") == "info"  # the next get sees the new version
    await apply(svc, var("app:level", "app:mem", "LEVEL", default="warn", readonly=True))
    assert env.get("LEVEL") == "warn"
    with pytest.raises(PermissionDeniedError):
        env.set("LEVEL", "x")
    with pytest.raises(DefinitionErrors) as info:
        await apply(svc, var("app:bad", "app:mem", "bad name"), Entry("app:nofile", "env.storage.file", {}, {}))
    text = str(info.value)
    assert "entry app:bad: field variable" in text and "entry app:nofile: field file_path" in text
    with pytest.raises(DefinitionErrors, match="names app:ghost, which does not exist"):
        await apply(svc, var("app:orphan", "app:ghost", "ORPHAN"))


def test_file_mode_default(tmp_path: Path) -> None:
    reg = Reg(file_storage("d.env", auto_create=True), var("app:a", "app:file", "A"))
    EnvService(reg, base_dir=tmp_path).set("A", "1")
    assert stat.S_IMODE(os.stat(tmp_path / "d.env").st_mode) == 0o644
