"""The `fs` module: directory volumes on real directories, confinement to the root (symlinks
included), files and scanners, permissions, and the apply-time checks of fs.directory entries."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, Op, validate_changeset
from wippy.lua_stdlib._fs_file import VolumeError
from wippy.lua_stdlib._fs_volume import Volume, volume_spec
from wippy.projections import RegistryState
from wippy.services import EnvService

from .helpers import Entries, Node, fn, run_entry


def volume(root: Path, name: str = "app:vol", **data: Any) -> Entry:
    return Entry(name, "fs.directory", {}, {"directory": str(root), **data})


def code(body: str) -> Entry:
    return fn("app:t", "local fs = require('fs')\nreturn { call = function(...)\n" + body + "\nend }",
              modules=["fs"])


async def run(body: str, *entries: Entry, args: tuple[Any, ...] = (), **ctx: Any) -> Any:
    ok, res = await run_entry(code(body), *entries, args=args, **ctx)
    assert ok, res
    return res[0] if len(res) == 1 else res


async def test_write_modes_and_whole_file_reads(tmp_path: Path) -> None:
    res = await run("""
        local vol = fs.get("app:vol")
        local out = {}
        out[1] = {vol:writefile("/notes.txt", "one\\n")}
        out[2] = {vol:writefile("notes.txt", "two\\n", "a")}
        out[3] = vol:readfile("/notes.txt")
        local ok, err = vol:writefile("notes.txt", "three", "wx")
        out[4] = {ok, err:kind()}
        out[5] = {vol:write_file("fresh.txt", "x", "wx")}
        out[6] = vol:read_file("fresh.txt")
        local _, bad = vol:writefile("a.txt", "x", "rw")
        out[7] = bad:kind()
        local _, missing = vol:readfile("nope.txt")
        out[8] = missing:kind()
        local _, nodata = vol:writefile("a.txt", nil)
        out[9] = nodata:kind()
        local _, empty = vol:readfile("")
        out[10] = empty:kind()
        return out
    """, volume(tmp_path))
    assert res == [[True], [True], "one\ntwo\n", [False, "ALREADY_EXISTS"], [True], "x", "INVALID", "NOT_FOUND",
                   "INVALID", "INVALID"]
    assert (tmp_path / "notes.txt").read_text() == "one\ntwo\n"


async def test_stat_exists_isdir_mkdir_remove(tmp_path: Path) -> None:
    res = await run("""
        local vol = fs.get("app:vol")
        vol:writefile("f.txt", "12345")
        local out = {}
        out.mkdir = {vol:mkdir("d")}
        local _, again = vol:mkdir("d")
        local _, orphan = vol:mkdir("no/such")
        out.mkdir_errs = {again:kind(), orphan:kind()}
        out.file = vol:stat("f.txt")
        out.dir = vol:stat("/d")
        out.exists = {vol:exists("f.txt"), vol:exists("missing"), vol:exists("f.txt/child"), vol:exists("")}
        local _, nodir = vol:isdir("missing")
        out.isdir = {vol:isdir("d"), vol:isdir("f.txt"), nodir:kind()}
        vol:writefile("d/inner", "x")
        local _, full = vol:remove("d")
        local _, root = vol:remove("/")
        out.remove_errs = {full:kind(), root:kind()}
        out.remove = {vol:remove("d/inner"), vol:remove("d"), vol:remove("f.txt"), vol:exists("d")}
        out.types = {fs.type.FILE, fs.type.DIR, fs.seek.SET, fs.seek.CUR, fs.seek.END}
        return out
    """, volume(tmp_path))
    assert res["mkdir"] == [True]
    assert res["mkdir_errs"] == ["ALREADY_EXISTS", "NOT_FOUND"]
    f = res["file"]
    assert (f["name"], f["size"], f["is_dir"], f["type"], f["mode"] & 0o777) == ("f.txt", 5, False, "file",
                                                                                  0o644 & ~_umask())
    assert isinstance(f["modified"], int) and f["modified"] > 0
    d = res["dir"]
    assert (d["name"], d["is_dir"], d["type"]) == ("d", True, "directory")
    assert d["mode"] & (1 << 31)  # Go's ModeDir bit, as Wippy reports it
    assert res["exists"] == [True, False, False, True]
    assert res["isdir"] == [True, False, "NOT_FOUND"]
    assert res["remove_errs"] == ["INVALID", "INVALID"]
    assert res["remove"] == [True, True, True, False]
    assert res["types"] == ["file", "directory", "set", "cur", "end"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_readdir_chdir_and_pwd(tmp_path: Path) -> None:
    (tmp_path / "src" / "lib").mkdir(parents=True)
    (tmp_path / "src" / "main.lua").write_text("x")
    (tmp_path / "src" / "b.txt").write_text("x")
    (tmp_path / "src" / os.fsdecode(b"caf\xe9")).write_text("x")  # a name that is not UTF-8
    res = await run("""
        local vol = fs.get("app:vol")
        local out = {pwd0 = vol:pwd()}
        local names = {}
        local function shown(name)
            return (name:gsub("[\\128-\\255]", function(c) return string.format("<%02x>", c:byte()) end))
        end
        for e in vol:readdir("/src") do names[#names + 1] = shown(e.name) .. ":" .. e.type end
        out.names = names
        out.chdir = {vol:chdir("src/lib")}
        out.pwd1 = vol:pwd()
        vol:writefile("../new.txt", "n")
        out.rel = vol:readfile("/src/new.txt")
        vol:chdir("..")
        out.pwd2 = vol:pwd()
        local _, notdir = vol:chdir("main.lua")
        local _, missing = vol:chdir("ghost")
        local _, up = vol:chdir("../..")
        out.errs = {notdir:kind(), missing:kind(), up:kind()}
        local it, err = vol:readdir("main.lua")
        out.readdir_file = {it == nil, err:kind()}
        local empty = 0
        vol:mkdir("/empty")
        for _ in vol:readdir("/empty") do empty = empty + 1 end
        out.empty = empty
        return out
    """, volume(tmp_path))
    assert res["pwd0"] == "/"
    assert res["names"] == ["b.txt:file", "caf<e9>:file", "lib:directory", "main.lua:file"]
    assert res["chdir"] == [True]
    assert res["pwd1"] == "/src/lib"
    assert res["rel"] == "n"
    assert res["pwd2"] == "/src"
    assert res["errs"] == ["INVALID", "NOT_FOUND", "PERMISSION_DENIED"]
    assert res["readdir_file"] == [True, "INVALID"]
    assert res["empty"] == 0


async def test_files_read_write_seek_sync_and_eof(tmp_path: Path) -> None:
    res = await run("""
        local vol = fs.get("app:vol")
        local f = vol:open("log.txt", "w")
        local out = {tostring(f)}
        out[2] = {f:write("hello "), f:write(42), f:sync()}
        local _, empty = f:write("")
        local _, noread = f:read()
        out[3] = {empty:kind(), noread:kind()}
        out[4] = f:seek("set", 0)
        f:write("J")
        out[5] = f:stat().size
        out[6] = {f:close(), f:close(), tostring(f)}
        local _, closed = f:write("x")
        out[7] = closed:kind()
        local r = vol:open("/log.txt", "r")
        out[8] = {r:read(3), r:seek("cur", 0), r:read(), r:seek("end", -2), r:read(100)}
        local chunk, eof = r:read()
        out[9] = {chunk == nil, eof:kind(), eof:message()}
        local _, zero = r:read(0)
        local _, whence = r:seek("middle", 1)
        local _, nowrite = r:write("x")
        out[10] = {zero:kind(), whence:kind(), nowrite:kind()}
        r:close()
        local _, badmode = vol:open("log.txt", "rw")
        local _, exists = vol:open("log.txt", "wx")
        local _, missing = vol:open("ghost.txt", "r")
        local _, isdir = vol:open("/", "r")
        out[11] = {badmode:kind(), exists:kind(), missing:kind(), isdir:kind()}
        local a = vol:open("log.txt", "a")
        a:write("!")
        a:close()
        out[12] = vol:readfile("log.txt")
        return out
    """, volume(tmp_path))
    assert res[0] == "fs.File{}"
    assert res[1] == [True, True, True]
    assert res[2] == ["INVALID", "INVALID"]
    assert res[3] == 0
    assert res[4] == 8
    assert res[5] == [True, True, "fs.File{closed}"]
    assert res[6] == "INVALID"
    assert res[7] == ["Jel", 3, "lo 42", 6, "42"]
    assert res[8] == [True, "NOT_FOUND", "EOF"]
    assert res[9] == ["INVALID", "INVALID", "INVALID"]
    assert res[10] == ["INVALID", "ALREADY_EXISTS", "NOT_FOUND", "INVALID"]
    assert res[11] == "Jello 42!"


async def test_scanners_split_like_go(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"alpha beta\r\n  gamma\n\nd\xc3\xa9lta\xff")
    res = await run("""
        local vol = fs.get("app:vol")
        local out = {}
        for _, split in ipairs({"lines", "words", "runes"}) do
            local f = vol:open("t.txt", "r")
            local sc = split == "lines" and f:scanner() or f:scanner(split)
            local tokens = {}
            while sc:scan() do tokens[#tokens + 1] = (sc:text():gsub("\\255", "<ff>")) end
            out[split] = {tokens, sc:err() == nil}
            f:close()
        end
        local f = vol:open("t.txt", "r")
        f:read(6)
        local sc = f:scanner("bytes")
        sc:scan()
        out.after_read = sc:text()
        local _, bad = f:scanner("sentences")
        f:close()
        local _, closed = f:scanner()
        out.errs = {bad:kind(), closed:kind()}
        return out
    """, volume(tmp_path))
    assert res["lines"] == [["alpha beta", "  gamma", "", "d\u00e9lta<ff>"], True]  # bytes as they are
    assert res["words"] == [["alpha", "beta", "gamma", "d\u00e9lta<ff>"], True]
    assert res["runes"][0][:6] == ["a", "l", "p", "h", "a", " "]
    assert res["runes"][0][-6:] == ["d", "\u00e9", "l", "t", "a", "\ufffd"]
    assert res["after_read"] == "b"  # the scanner reads on from the file's position
    assert res["errs"] == ["INVALID", "INVALID"]


async def test_large_and_binary_data_round_trip(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value: goes through worker threads
    (tmp_path / "in.bin").write_bytes(blob)
    res = await run("""
        local vol = fs.get("app:vol")
        local data = vol:readfile("in.bin")
        vol:writefile("out.bin", data)
        local f = vol:open("in.bin", "r")
        local first = f:read(300000)
        local n = #first
        while true do
            local chunk = f:read(300000)
            if not chunk then break end
            n = n + #chunk
        end
        f:close()
        local w = vol:open("copy.bin", "w")
        w:write(data)
        w:close()
        local src = vol:open("in.bin", "r")
        vol:writefile("streamed.bin", src)    -- from a reader
        src:close()
        return {#data, #first, n}
    """, volume(tmp_path))
    assert res == [len(blob), 300000, len(blob)]
    for name in ("out.bin", "copy.bin", "streamed.bin"):
        assert (tmp_path / name).read_bytes() == blob


async def test_volume_setup_auto_init_mode_and_relative_roots(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "hello.txt").write_text("hi")
    res = await run("""
        local out = {}
        local vol, err = fs.get("app:made")
        out.made = {vol ~= nil, err == nil}
        vol:mkdir("sub")
        local _, missing = fs.get("app:missing")
        local _, unknown = fs.get("app:nothing")
        local _, wrong = fs.get("app:t")
        local _, empty = fs.get("")
        local _, notstr = fs.get(42)
        out.errs = {missing:kind(), unknown:kind(), wrong:kind(), empty:kind(), notstr:kind()}
        out.msg = tostring(missing)
        local rel = fs.get("app:rel")
        out.rel = rel:readfile("hello.txt")
        return out
    """, volume(Path("data/new"), "app:made", auto_init=True, mode="0750"),
        volume(tmp_path / "absent", "app:missing"), volume(Path("shared"), "app:rel"))
    assert res["made"] == [True, True]
    assert (tmp_path / "data" / "new").stat().st_mode & 0o777 == 0o750 & ~_umask()
    assert (tmp_path / "data" / "new" / "sub").stat().st_mode & 0o777 == 0o750 & ~_umask()
    assert res["errs"] == ["NOT_FOUND", "NOT_FOUND", "INVALID", "INVALID", "INVALID"]
    assert "app:missing" in res["msg"] and "auto_init" in res["msg"]
    assert res["rel"] == "hi"


async def test_env_placeholders_in_the_entry_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("from env")
    entries = (code("return fs.get('app:vol'):readfile('x.txt')"), volume(Path("${env:DATA_DIR}")),
               Entry("app:os", "env.storage.os", {}, {}),
               Entry("app:data_dir", "env.variable", {}, {"storage": "app:os", "variable": "DATA_DIR"}))
    registry = Entries(*entries)
    ok, res = await run_entry(entries[0], registry=registry,
                              env=EnvService(registry, environ={"DATA_DIR": str(tmp_path)}))
    assert ok, res
    assert res[0] == "from env"


async def test_files_left_open_are_closed_with_the_host(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    before = len(os.listdir("/proc/self/fd"))
    res = await run("""
        local vol = fs.get("app:vol")
        local kept = {}
        for i = 1, 20 do kept[i] = vol:open("a.txt", "r") end
        return #kept
    """, volume(tmp_path))
    assert res == 20
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_permission_fs_get(tmp_path: Path, node: Node) -> None:
    pol = Entry("app.sec:vol", "security.policy", {},
                {"policy": {"actions": "fs.get", "resources": "app:vol", "effect": "allow"}, "groups": ["app.sec:g"]})
    calls = Entry("app.sec:calls", "security.policy", {},
                  {"policy": {"actions": "funcs.call", "resources": "*", "effect": "allow"}, "groups": ["app.sec:g"]})
    inner = code("""
        local _, denied = fs.get("app:other")
        local vol, err = fs.get("app:vol")
        return {vol ~= nil, err == nil, denied:kind(), tostring(denied)}
    """)
    ok, res = await node.run(fn("app:outer", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            return funcs.new():with_actor(security.new_actor("u1")):with_scope(security.named_scope("app.sec:g"))
                :call("app:t")
        end }
    """, modules=["security", "funcs"]), inner, volume(tmp_path), volume(tmp_path, "app:other"), pol, calls)
    assert ok, res
    assert res[0][:3] == [True, True, "PERMISSION_DENIED"]
    assert "fs.get" in res[0][3] and "app:other" in res[0][3]


async def test_strict_mode_denies_without_an_actor(tmp_path: Path) -> None:
    res = await run("""
        local _, err = fs.get("app:vol")
        return err:kind()
    """, volume(tmp_path), strict=True)
    assert res == "PERMISSION_DENIED"


# -- confinement ----------------------------------------------------------------------------------
def _make_jail(base: Path) -> tuple[Path, Path]:
    """A volume root with links inside pointing out, and a directory outside it holding a secret."""
    outside = base / "outside"
    outside.mkdir(parents=True)
    (outside / "secret.txt").write_text("SECRET")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "inside.txt").write_text("inside")
    os.symlink(outside, root / "out_abs")  # absolute, outside
    os.symlink("../outside", root / "out_rel")  # relative, outside
    os.symlink("../../../outside/secret.txt", root / "a" / "b" / "deep_out")
    os.symlink(outside / "new.txt", root / "dangling_out")  # to a file not there yet, outside
    os.symlink("a/inside.txt", root / "in_rel")  # inside
    os.symlink(root / "a", root / "in_abs")  # absolute, inside
    os.symlink("b/..", root / "a" / "up_in")  # stays inside
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return root, outside


@pytest.fixture
def jail(tmp_path: Path) -> tuple[Path, Path]:
    return _make_jail(tmp_path)


_examples = itertools.count()


def _snapshot(d: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


async def test_symlinks_and_dots_never_reach_outside(jail: tuple[Path, Path]) -> None:
    root, outside = jail
    before = _snapshot(outside)
    res = await run("""
        local vol = fs.get("app:vol")
        local out = {}
        local function kind(_, err) return err and err:kind() or "ok" end
        for _, p in ipairs({"out_abs/secret.txt", "out_rel/secret.txt", "a/b/deep_out", "../outside/secret.txt",
                            "/../outside/secret.txt", "a/../../outside/secret.txt"}) do
            out[#out + 1] = {p, kind(vol:readfile(p)), kind(vol:writefile(p, "x")), kind(vol:stat(p)),
                             kind(vol:open(p, "r")), kind(vol:open(p, "a"))}
        end
        out.dangling = kind(vol:writefile("dangling_out", "x"))
        out.mkdir = kind(vol:mkdir("out_abs/newdir"))
        out.readdir = kind(vol:readdir("out_rel"))
        out.chdir = kind(vol:chdir("out_abs"))
        out.exists = {vol:exists("out_abs/secret.txt")}
        out.inside = {vol:readfile("in_rel"), vol:readfile("in_abs/inside.txt"), vol:readfile("a/up_in/inside.txt")}
        vol:mkdir("/etc")
        out.slash = {vol:writefile("/etc/passwd", "mine"), vol:readfile("//etc/passwd")}
        out.loop = kind(vol:readfile("loop1"))
        out.nul = kind(vol:readfile("a\\0b"))
        out.remove_link = {vol:remove("out_abs")}
        return out
    """, volume(root))
    for row in [res[str(i)] for i in range(1, 7)]:
        assert row[1:] == ["PERMISSION_DENIED"] * 5, row
    assert res["dangling"] == res["mkdir"] == res["readdir"] == res["chdir"] == "PERMISSION_DENIED"
    assert res["exists"][0] is False
    assert res["inside"] == ["inside", "inside", "inside"]
    assert res["slash"] == [True, "mine"]  # an absolute path is the volume's own
    assert (root / "etc" / "passwd").read_text() == "mine"
    assert res["loop"] == "INVALID"
    assert res["nul"] == "INVALID"
    assert res["remove_link"] == [True]  # removes the link, not what it points at
    assert _snapshot(outside) == before


_NAMES = st.sampled_from(["..", ".", "", "a", "b", "x.txt", "out_abs", "out_rel", "in_abs", "in_rel", "up_in",
                          "dangling_out", "deep_out", "loop1", "secret.txt", "outside", "root"])
_PATHS = st.builds(lambda lead, names: lead + "/".join(names), st.sampled_from(["", "/", "//"]),
                   st.lists(_NAMES, min_size=0, max_size=7))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_PATHS, cwd=st.sampled_from(["", "a", "a/b"]))
def test_any_path_stays_inside_the_root(tmp_path: Path, path: str, cwd: str) -> None:
    root, outside = _make_jail(tmp_path / str(next(_examples)))  # a fresh jail per example
    vol = Volume(volume_spec(volume(root), root))
    before = _snapshot(outside)
    for op in (lambda: vol.open(cwd, path, "r").read_all(), lambda: vol.stat(cwd, path),
               lambda: vol.listdir(cwd, path), lambda: vol.open(cwd, path, "a").write(b"x"),
               lambda: vol.open(cwd, path, "w").close(), lambda: vol.mkdir(cwd, path), lambda: vol.exists(cwd, path),
               lambda: vol.chdir(cwd, path)):
        try:
            got = op()
        except VolumeError:
            continue
        assert got != b"SECRET"
    with contextlib.suppress(VolumeError):
        vol.remove(cwd, path)
    assert _snapshot(outside) == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_PATHS)
async def test_lua_paths_stay_inside_the_root(tmp_path: Path, path: str) -> None:
    root, outside = _make_jail(tmp_path / str(next(_examples)))
    before = _snapshot(outside)
    res = await run("""
        local p = ...
        local vol = fs.get("app:vol")
        local seen = {}
        seen[#seen + 1] = vol:readfile(p)
        local f = vol:open(p, "r")
        if f then seen[#seen + 1] = f:read(100) f:close() end
        vol:writefile(p, "w")
        vol:writefile(p, "a", "a")
        vol:mkdir(p)
        local found = false
        for _, s in ipairs(seen) do if s == "SECRET" then found = true end end
        return found
    """, volume(root), args=(path,))
    assert res is False
    assert _snapshot(outside) == before


# -- apply-time checks --------------------------------------------------------------------------
def _apply(entry: Entry) -> None:
    validate_changeset(RegistryState(), [Op("create", entry.id, entry)])


@pytest.mark.parametrize(("data", "field"), [
    ({}, "directory"),
    ({"directory": ""}, "directory"),
    ({"directory": 3}, "directory"),
    ({"directory": "/d", "mode": "0999"}, "mode"),
    ({"directory": "/d", "mode": "rwx"}, "mode"),
    ({"directory": "/d", "auto_init": "yes"}, "auto_init"),
    ({"directory": "/d", "base": "home"}, "base"),
])
def test_bad_fs_directory_entries_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionErrors) as info:
        _apply(Entry("app:vol", "fs.directory", {}, data))
    assert "app:vol" in str(info.value) and field in str(info.value)


@pytest.mark.parametrize("data", [
    {"directory": "./public/", "mode": "0755", "auto_init": True},
    {"directory": "${env:DATA_DIR}", "mode": "${env:MODE|\"0700\"}"},
    {"directory": "/srv", "mode": 493, "base": "module"},
    {"directory_env": "app:dir"},
])
def test_good_fs_directory_entries_pass(data: dict[str, Any]) -> None:
    _apply(Entry("app:vol", "fs.directory", {}, data))


# -- bad input ------------------------------------------------------------------------------------
BAD_VALUES = "{nil, true, 1.5, -1, math.maxinteger, 0/0, 1/0, '\\255\\0x', '', {}, {1, 2}, print}"


async def test_bad_arguments_give_errors_not_python_exceptions(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("data")
    res = await run("""
        local bad = """ + BAD_VALUES + """
        local vol = fs.get("app:vol")
        local file = vol:open("f.txt", "r")
        local raised = {}
        local function try(label, f, ...)
            local ok, err = pcall(f, ...)
            if not ok then raised[#raised + 1] = label .. ": " .. tostring(err) end
        end
        for i = 1, 12 do
            local a = bad[i]
            try("fs.get", fs.get, a)
            for _, m in ipairs({"readfile", "read_file", "exists", "isdir", "stat", "mkdir", "remove", "readdir",
                                "chdir", "pwd"}) do
                try(m, vol[m], vol, a)
                try(m .. " on a table", vol[m], {}, a)
            end
            for j = 1, 12 do
                try("writefile", vol.writefile, vol, "w.txt", a, bad[j])
                try("open", vol.open, vol, a, bad[j])
                try("seek", file.seek, file, a, bad[j])
            end
            for _, m in ipairs({"read", "write", "stat", "sync", "scanner"}) do
                try("file:" .. m, file[m], file, a)
                try("file:" .. m .. " on a table", file[m], {}, a)
            end
        end
        file:close()
        return raised
    """, volume(tmp_path))
    assert not res, res  # every bad call answers with an error value
