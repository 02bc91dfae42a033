"""The DuckDB projection store: the one module that imports duckdb.

What users query (all derived from the log; drop the file and it is rebuilt from sequence 1;
typed views over the rows kept in schema ``store``). ``at`` is a reserved word in DuckDB's SQL:
write it in double quotes (``SELECT "at" FROM registry_versions``)::

    registry_entries (id, ns, name, kind, meta JSON, data JSON, version, origin)   current entries
    registry_versions(version, at, author, message, ops JSON, node, trace, rollback_of, warnings JSON)
    registry_history (version, id, op, kind, meta JSON, data JSON, at, author, origin)
    registry_files_base(id, digest)          what the app files said at their last apply
    audit(seq, at, type, actor, node, action, resource, entry, detail JSON)   the audit stream
    processes(pid, entry_id, host, parent, node, status, started_at, exited_at, exit_error, restarts)
                                             one row per pid; status running | exited | failed
    process_messages(seq, at, from_pid, to_pid, topic, bytes)            every proc.message
    process_dead_letters(seq, at, from_pid, to_pid, topic, reason, bytes)  every proc.dead_letter
    process_events(seq, at, type, pid, node, body JSON)                   every proc record
    events(seq, at, node, system, kind, path, data JSON)                  every events.send
    llm_calls(seq, at, node, call_id, run_id, turn, model, provider, *_tokens, cost, latency_ms,
              finish_reason, error_type, error, operation, pid)           every llm.call
    agent_steps(seq, at, node, run_id, type, turn, call_id, name, agent, parent_run_id, status, pid,
                is_error, detail JSON)     every record of an agent run (type started|call|tool|finished)
    agent_runs(run, agent, status, turns, tool_calls, model_calls, total_tokens, cost, resumes,
               parent_run_id, pid, node, started_at, finished_at, finish_reason, error)
                                           one row per run; status running | completed | failed |
                                           interrupted (its process ended without finishing it)
    projection_checkpoints(name, seq, version)

A batch of changesets and the checkpoint are written in one transaction, so a crash never
applies a record twice or skips one. Rows go in through DuckDB's appender (a statement per row
costs ~0.3 ms; the appender a few microseconds). ``history`` keeps the after-image of every create/update and
the before-image of every delete, which makes the state at any version one indexed scan:
the newest history row per id at or below that version, unless it is a delete.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from wippy.core import ConfigError, DefinitionError, Entry

from ._registry_state import AppliedChangeset

REGISTRY = "registry"
#: the tables the registry projection writes
REGISTRY_TABLES = ("registry_entries", "registry_versions", "registry_history", "registry_files_base")

# Rows land in the `store` schema as written (JSON as text we produced with orjson, times as
# microseconds), which DuckDB's appender takes about twice as fast as JSON and TIMESTAMPTZ
# columns it must validate and convert; users see typed views of the same names in `main`.
_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS store;
CREATE TABLE IF NOT EXISTS store.registry_entries (
    id VARCHAR, ns VARCHAR, name VARCHAR, kind VARCHAR, meta VARCHAR, data VARCHAR, version BIGINT, origin VARCHAR);
CREATE TABLE IF NOT EXISTS store.registry_versions (
    version BIGINT, at_us BIGINT, author VARCHAR, message VARCHAR, ops VARCHAR, node VARCHAR,
    trace VARCHAR, rollback_of BIGINT, warnings VARCHAR);
CREATE TABLE IF NOT EXISTS store.registry_history (
    version BIGINT, id VARCHAR, op VARCHAR, kind VARCHAR, meta VARCHAR, data VARCHAR,
    at_us BIGINT, author VARCHAR, origin VARCHAR);
CREATE TABLE IF NOT EXISTS store.registry_files_base (id VARCHAR, digest VARCHAR);
CREATE TABLE IF NOT EXISTS store.projection_checkpoints (name VARCHAR, seq BIGINT, version BIGINT);
CREATE OR REPLACE VIEW registry_entries AS
    SELECT id, ns, name, kind, meta::JSON AS meta, data::JSON AS data, version, origin
    FROM store.registry_entries;
CREATE OR REPLACE VIEW registry_versions AS
    SELECT version, make_timestamptz(at_us) AS "at", author, message, ops::JSON AS ops, node, trace,
           rollback_of, warnings::JSON AS warnings
    FROM store.registry_versions;
CREATE OR REPLACE VIEW registry_history AS
    SELECT version, id, op, kind, meta::JSON AS meta, data::JSON AS data, make_timestamptz(at_us) AS "at",
           author, origin
    FROM store.registry_history;
CREATE TABLE IF NOT EXISTS store.audit (
    seq BIGINT, at_us BIGINT, type VARCHAR, actor VARCHAR, node VARCHAR, action VARCHAR, resource VARCHAR,
    entry VARCHAR, detail VARCHAR);
CREATE OR REPLACE VIEW audit AS
    SELECT seq, make_timestamptz(at_us) AS "at", type, actor, node, action, resource, entry,
           detail::JSON AS detail
    FROM store.audit;
CREATE TABLE IF NOT EXISTS store.processes (
    pid VARCHAR, entry_id VARCHAR, host VARCHAR, parent VARCHAR, node VARCHAR, status VARCHAR,
    started_us BIGINT, exited_us BIGINT, exit_error VARCHAR, restarts BIGINT);
CREATE OR REPLACE VIEW processes AS
    SELECT pid, entry_id, host, parent, node, status, make_timestamptz(started_us) AS started_at,
           make_timestamptz(exited_us) AS exited_at, exit_error, restarts
    FROM store.processes;
CREATE TABLE IF NOT EXISTS store.process_messages (
    seq BIGINT, at_us BIGINT, from_pid VARCHAR, to_pid VARCHAR, topic VARCHAR, bytes BIGINT);
CREATE OR REPLACE VIEW process_messages AS
    SELECT seq, make_timestamptz(at_us) AS "at", from_pid, to_pid, topic, bytes FROM store.process_messages;
CREATE TABLE IF NOT EXISTS store.process_dead_letters (
    seq BIGINT, at_us BIGINT, from_pid VARCHAR, to_pid VARCHAR, topic VARCHAR, reason VARCHAR, bytes BIGINT);
CREATE OR REPLACE VIEW process_dead_letters AS
    SELECT seq, make_timestamptz(at_us) AS "at", from_pid, to_pid, topic, reason, bytes
    FROM store.process_dead_letters;
CREATE TABLE IF NOT EXISTS store.process_events (
    seq BIGINT, at_us BIGINT, type VARCHAR, pid VARCHAR, node VARCHAR, body VARCHAR);
CREATE OR REPLACE VIEW process_events AS
    SELECT seq, make_timestamptz(at_us) AS "at", type, pid, node, body::JSON AS body FROM store.process_events;
CREATE TABLE IF NOT EXISTS store.events (
    seq BIGINT, at_us BIGINT, node VARCHAR, system VARCHAR, kind VARCHAR, path VARCHAR, data VARCHAR);
CREATE OR REPLACE VIEW events AS
    SELECT seq, make_timestamptz(at_us) AS "at", node, system, kind, path, data::JSON AS data FROM store.events;
CREATE TABLE IF NOT EXISTS store.llm_calls (
    seq BIGINT, at_us BIGINT, node VARCHAR, call_id VARCHAR, run_id VARCHAR, model VARCHAR, provider VARCHAR,
    prompt_tokens BIGINT, completion_tokens BIGINT, thinking_tokens BIGINT, total_tokens BIGINT, cost DOUBLE,
    latency_ms DOUBLE, finish_reason VARCHAR, error_type VARCHAR, error VARCHAR, operation VARCHAR, pid VARCHAR,
    turn BIGINT);
CREATE OR REPLACE VIEW llm_calls AS
    SELECT seq, make_timestamptz(at_us) AS "at", node, call_id, run_id, turn, model, provider, prompt_tokens,
           completion_tokens, thinking_tokens, total_tokens, cost, latency_ms, finish_reason, error_type, error,
           operation, pid
    FROM store.llm_calls;
CREATE TABLE IF NOT EXISTS store.agent_steps (
    seq BIGINT, at_us BIGINT, node VARCHAR, run_id VARCHAR, type VARCHAR, turn BIGINT, call_id VARCHAR,
    name VARCHAR, agent VARCHAR, parent_run_id VARCHAR, status VARCHAR, pid VARCHAR, is_error BOOLEAN,
    detail VARCHAR);
CREATE OR REPLACE VIEW agent_steps AS
    SELECT seq, make_timestamptz(at_us) AS "at", node, run_id, type, turn, call_id, name, agent, parent_run_id,
           status, pid, is_error, detail::JSON AS detail
    FROM store.agent_steps;
CREATE OR REPLACE VIEW agent_runs AS
    WITH starts AS (
        SELECT run_id, arg_min(agent, seq) AS agent, arg_min(parent_run_id, seq) AS parent_run_id,
               min(at_us) AS started_us, arg_max(pid, seq) AS pid, arg_max(node, seq) AS node,
               count(*) - 1 AS resumes, max(seq) AS last_start
        FROM store.agent_steps WHERE type = 'started' GROUP BY run_id),
    ends AS (
        SELECT run_id, arg_max(status, seq) AS status, max(seq) AS last_end, arg_max(at_us, seq) AS finished_us,
               arg_max(turn, seq) AS turns, arg_max(detail, seq) AS detail
        FROM store.agent_steps WHERE type = 'finished' GROUP BY run_id),
    steps AS (
        SELECT run_id, max(turn) FILTER (WHERE type = 'call') AS turns,
               count(*) FILTER (WHERE type = 'tool') AS tool_calls
        FROM store.agent_steps GROUP BY run_id),
    calls AS (
        SELECT run_id, count(*) AS model_calls, sum(total_tokens) AS total_tokens, sum(cost) AS cost
        FROM store.llm_calls WHERE run_id IS NOT NULL GROUP BY run_id)
    SELECT s.run_id AS run, s.agent,
           CASE WHEN e.last_end > s.last_start THEN e.status
                WHEN p.status IN ('exited', 'failed') THEN 'interrupted'
                ELSE 'running' END AS status,
           coalesce(CASE WHEN e.last_end > s.last_start THEN e.turns END, st.turns, 0) AS turns,
           coalesce(st.tool_calls, 0) AS tool_calls, coalesce(c.model_calls, 0) AS model_calls,
           coalesce(c.total_tokens, 0) AS total_tokens, c.cost, s.resumes, s.parent_run_id, s.pid, s.node,
           make_timestamptz(s.started_us) AS started_at,
           CASE WHEN e.last_end > s.last_start THEN make_timestamptz(e.finished_us) END AS finished_at,
           CASE WHEN e.last_end > s.last_start THEN e.detail::JSON ->> 'finish_reason' END AS finish_reason,
           CASE WHEN e.last_end > s.last_start THEN e.detail::JSON ->> 'error' END AS error
    FROM starts s LEFT JOIN ends e USING (run_id) LEFT JOIN steps st USING (run_id)
         LEFT JOIN calls c USING (run_id) LEFT JOIN store.processes p ON p.pid = s.pid;
CREATE OR REPLACE VIEW registry_files_base AS SELECT * FROM store.registry_files_base;
CREATE OR REPLACE VIEW projection_checkpoints AS SELECT * FROM store.projection_checkpoints;
"""

# The newest history row per id at or below a version, unless it is a delete (meta/data as text).
_STATE_AT_RAW = """
SELECT id, split_part(id, ':', 1) AS ns, substr(id, strpos(id, ':') + 1) AS name, kind, meta, data,
       version, origin
FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY version DESC) AS rn
    FROM store.registry_history WHERE version <= {v}
) WHERE rn = 1 AND op <> 'delete'
"""
_STATE_AT = (
    "SELECT id, ns, name, kind, meta::JSON AS meta, data::JSON AS data, version, origin "
    "FROM (" + _STATE_AT_RAW + ")"
)

_READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """Rows as objects, with JSON columns decoded."""
        json_cols = [i for i, t in enumerate(self.types) if t == "JSON"]
        out = []
        for row in self.rows:
            values = list(row)
            for i in json_cols:
                if isinstance(values[i], str):
                    values[i] = orjson.loads(values[i])
            out.append(dict(zip(self.columns, values, strict=True)))
        return out


@dataclass(frozen=True, slots=True)
class PersistedRegistry:
    entries: dict[str, Entry]
    origins: dict[str, str | None]
    files_base: dict[str, str]
    version: int
    seq: int
    versions: list[int]


class ProjectionDB:
    """One writer connection to a projection file (DuckDB allows one writer process per file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        target = str(path) if path is not None else ":memory:"
        try:
            self._con = duckdb.connect(target)
        except duckdb.IOException as exc:
            raise ConfigError(f"cannot open the projection database {target}: {exc}") from exc
        self._migrate()
        self._con.execute(_SCHEMA)
        self._write_lock = threading.Lock()
        self._closed = False

    def _migrate(self) -> None:
        """Files written before ``llm_calls`` had a ``turn``: its rows are rebuilt from the log
        (the agents projection starts from sequence 1 under its new checkpoint name)."""
        found = self._con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'store' AND table_name = 'llm_calls'"
            " AND column_name = 'turn'").fetchone()
        exists = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'store' AND table_name = 'llm_calls'").fetchone()
        if exists and exists[0] and found is not None and not found[0]:
            self._con.execute("DROP VIEW IF EXISTS main.llm_calls; DROP TABLE store.llm_calls;"
                              " DELETE FROM store.projection_checkpoints WHERE name = 'llm_calls'")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._con.close()

    # -- checkpoints and loading ------------------------------------------------------------------
    def checkpoint(self, name: str = REGISTRY) -> tuple[int, int]:
        """(seq, version) this projection has committed; (0, 0) when empty."""
        row = self._con.cursor().execute(
            "SELECT seq, version FROM store.projection_checkpoints WHERE name = ?", [name]
        ).fetchall()
        return (int(row[0][0]), int(row[0][1])) if row else (0, 0)

    def load_registry(self) -> PersistedRegistry:
        cur = self._con.cursor()
        seq, version = self.checkpoint(REGISTRY)
        entries: dict[str, Entry] = {}
        origins: dict[str, str | None] = {}
        for eid, kind, meta, data, origin in cur.execute(
            "SELECT id, kind, meta, data, origin FROM store.registry_entries"
        ).fetchall():
            entries[eid] = Entry(eid, kind, orjson.loads(meta), orjson.loads(data))
            origins[eid] = origin
        base = dict(cur.execute("SELECT id, digest FROM store.registry_files_base").fetchall())
        rows = cur.execute("SELECT version FROM store.registry_versions ORDER BY version").fetchall()
        versions = [v for (v,) in rows]
        return PersistedRegistry(entries, origins, base, version, seq, versions)

    # -- writing ------------------------------------------------------------------------------------
    def write_registry(self, batch: Sequence[AppliedChangeset], *, seq: int, version: int) -> None:
        """Persist a batch of applied changesets and the checkpoint, atomically."""
        entry_rows: dict[str, tuple[Any, ...] | None] = {}
        base_rows: dict[str, str | None] = {}
        version_rows: list[tuple[Any, ...]] = []
        history_rows: list[tuple[Any, ...]] = []
        dumps = orjson.dumps
        add_version = version_rows.append
        add_history = history_rows.append
        for cs in batch:  # the hot loop of a rebuild: kept flat on purpose
            at = cs.at // 1000
            version_no = cs.version
            author = cs.author
            ops = cs.ops
            ops_json = dumps([{"op": a.op, "id": a.id} for a in ops]).decode()
            warnings = dumps(cs.warnings).decode() if cs.warnings else "[]"
            add_version((version_no, at, author, cs.message, ops_json, cs.node, cs.trace, cs.rollback_of, warnings))
            for a in ops:
                after = a.after
                shown = after if after is not None else a.before
                assert shown is not None
                meta = dumps(shown.meta).decode()
                data = dumps(shown.data).decode()
                add_history((version_no, a.id, a.op, shown.kind, meta, data, at, author, a.origin))
                if after is None:
                    entry_rows[a.id] = None
                else:
                    ns, _, name = a.id.partition(":")
                    entry_rows[a.id] = (a.id, ns, name, shown.kind, meta, data, version_no, a.origin)
            if cs.files_base:
                base_rows.update(cs.files_base)

        with self._checkpointed(REGISTRY, seq, version) as con:
            if entry_rows:
                _delete_ids(con, "store.registry_entries", entry_rows.keys())
                _append(con, "store.registry_entries", (r for r in entry_rows.values() if r is not None))
            if base_rows:
                _delete_ids(con, "store.registry_files_base", base_rows.keys())
                _append(con, "store.registry_files_base", ((k, v) for k, v in base_rows.items() if v is not None))
            _append(con, "store.registry_versions", version_rows)
            _append(con, "store.registry_history", history_rows)

    @contextlib.contextmanager
    def _checkpointed(self, checkpoint: str, seq: int, version: int = 0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction that also moves ``checkpoint`` to ``seq``; rolled back on any error."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("DELETE FROM store.projection_checkpoints WHERE name = ?", [checkpoint])
                con.execute("INSERT INTO store.projection_checkpoints VALUES (?, ?, ?)", [checkpoint, seq, version])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def replace_from(self, source: Path, tables: Sequence[str], *, checkpoint: str) -> int:
        """Replace ``tables`` and ``checkpoint`` with those of another projection file (a rebuild),
        in one transaction: readers see the old rows or the new ones, never a mix. Returns the
        new checkpoint's position."""
        with self._write_lock:
            con = self._con
            con.execute(f"ATTACH '{str(source).replace(chr(39), chr(39) * 2)}' AS rebuilt (READ_ONLY)")
            try:
                found = con.execute("SELECT seq, version FROM rebuilt.store.projection_checkpoints WHERE name = ?",
                                    [checkpoint]).fetchall()
                seq, version = found[0] if found else (0, 0)
                con.execute("BEGIN TRANSACTION")
                try:
                    for table in tables:
                        con.execute(f"DELETE FROM store.{table}")
                        con.execute(f"INSERT INTO store.{table} SELECT * FROM rebuilt.store.{table}")
                    con.execute("DELETE FROM store.projection_checkpoints WHERE name = ?", [checkpoint])
                    con.execute("INSERT INTO store.projection_checkpoints VALUES (?, ?, ?)", [checkpoint, seq, version])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.execute("DETACH rebuilt")
        return int(seq)

    def write_rows(self, table: str, rows: Sequence[tuple[Any, ...]], *, checkpoint: str, seq: int) -> None:
        """Append rows to a ``store`` table and move a checkpoint, atomically (append-only projections)."""
        self.write_appends({table: rows}, checkpoint=checkpoint, seq=seq)

    def write_appends(self, appends: Mapping[str, Sequence[tuple[Any, ...]]], *, checkpoint: str, seq: int) -> None:
        """Append rows to several ``store`` tables and move a checkpoint, atomically."""
        with self._checkpointed(checkpoint, seq) as con:
            for table, rows in appends.items():
                if rows:
                    _append(con, f"store.{table}", rows)

    def write_processes(self, processes: Mapping[str, tuple[Any, ...]],
                        appends: Mapping[str, Sequence[tuple[Any, ...]]], *, checkpoint: str, seq: int) -> None:
        """Replace ``processes`` rows by pid, append rows to other ``store`` tables and move a checkpoint,
        atomically (the process projection)."""
        with self._checkpointed(checkpoint, seq) as con:
            if processes:
                _delete_ids(con, "store.processes", processes.keys(), key="pid")
                _append(con, "store.processes", processes.values())
            for table, rows in appends.items():
                if rows:
                    _append(con, f"store.{table}", rows)

    # -- reading ------------------------------------------------------------------------------------
    def process_rows(self, pids: Iterable[str]) -> list[tuple[Any, ...]]:
        """The stored ``processes`` rows of these pids (times as microseconds), in column order."""
        return self._con.cursor().execute(
            "SELECT * FROM store.processes WHERE pid IN (SELECT unnest(?::VARCHAR[]))", [list(pids)]
        ).fetchall()

    def state_at(self, version: int) -> dict[str, tuple[Entry, str | None]]:
        cur = self._con.cursor()
        rows = cur.execute(
            f"SELECT id, kind, meta, data, origin FROM ({_STATE_AT_RAW.format(v=int(version))}) ORDER BY id"
        ).fetchall()
        return {r[0]: (Entry(r[0], r[1], orjson.loads(r[2]), orjson.loads(r[3])), r[4]) for r in rows}

    def version_exists(self, version: int) -> bool:
        if version == 0:
            return True
        cur = self._con.cursor()
        rows = cur.execute("SELECT count(*) FROM store.registry_versions WHERE version = ?", [version]).fetchall()
        return bool(rows[0][0])

    def versions(self) -> list[dict[str, Any]]:
        sql = 'SELECT version, "at", author, message, ops FROM registry_versions ORDER BY version'
        return self.query(sql).records()

    def history(self, entry_id: str) -> list[dict[str, Any]]:
        cur = self._con.cursor()
        result = _run(
            cur,
            'SELECT version, "at", author, op, kind, meta, data, origin FROM registry_history '
            "WHERE id = ? ORDER BY version",
            [entry_id],
        )
        return result.records()

    def query_bare(self, sql: str) -> list[tuple[Any, ...]]:
        """``sql`` straight on a DuckDB cursor, no checks or conversion: the raw baseline of
        ``wippy bench`` (never give it user input)."""
        return self._con.cursor().execute(sql).fetchall()

    def query(self, sql: str, *, at: int | None = None, params: Sequence[Any] | None = None) -> QueryResult:
        """Run one read-only statement. ``at`` shows ``registry_entries`` as of that version."""
        cur = self._con.cursor()
        try:
            statements = cur.extract_statements(sql)
        except duckdb.Error as exc:
            raise DefinitionError(f"SQL error: {exc}") from exc
        if len(statements) != 1:
            raise DefinitionError(f"give exactly one SQL statement (got {len(statements)})")
        kind = statements[0].type.name
        if kind not in _READ_ONLY_TYPES:
            raise DefinitionError(f"queries are read-only: {kind} statements are not allowed")
        if at is not None:
            cur.execute(f"CREATE TEMP VIEW registry_entries AS {_STATE_AT.format(v=int(at))}")
        return _run(cur, sql, params)


def _run(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> QueryResult:
    try:
        res = cur.execute(sql, list(params) if params else None)
        desc = res.description or []
        rows = res.fetchall()
    except duckdb.Error as exc:
        raise DefinitionError(f"SQL error: {exc}") from exc
    return QueryResult(
        columns=tuple(d[0] for d in desc),
        types=tuple(str(d[1]) for d in desc),
        rows=rows,
    )


def _delete_ids(con: duckdb.DuckDBPyConnection, table: str, ids: Iterable[str], *, key: str = "id") -> None:
    con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [list(ids)])


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    appender = con.appender(table)
    for row in rows:
        appender.append_row(*row)
    appender.flush()
