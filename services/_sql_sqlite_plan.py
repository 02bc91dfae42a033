"""`db.sql.sqlite`'s view of a statement: how SQLite will run it, read from its compiled program
(``EXPLAIN``), and what its errors mean (services._sql_sqlite decides from these where a
statement runs).

A plan is a kind, ``READ`` (changes nothing), ``SHORT`` (writes without any loop in its
program: an INSERT ... VALUES, an UPDATE/DELETE by key, SAVEPOINT/RELEASE: bounded work), ``LONG``
(writes with a loop, a trigger, a scan, a schema change, COMMIT) or ``MULTI`` (several statements
in one string), plus flags: ``SCHEMA`` (drop cached plans after it), ``DATA`` (writes more than
transaction control).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ._sql import SqlError

READ, SHORT, LONG, MULTI = 1, 2, 3, 4
SCHEMA = 8
DATA = 16
_CONTROL_OPS = frozenset({"Savepoint", "AutoCommit"})
_WRITE_OPS = frozenset({
    "OpenWrite", "Insert", "Delete", "IdxInsert", "IdxDelete", "VUpdate", "Vacuum", "JournalMode", "AutoCommit",
    "Savepoint", "ParseSchema", "CreateBtree", "Destroy", "Clear", "DropTable", "DropIndex", "DropTrigger",
    "SetCookie", "Expire", "Checkpoint", "IncrVacuum", "VCreate", "VDestroy", "VBegin", "SqlExec",
})
_LOOP_OPS = frozenset({
    "Next", "Prev", "SorterNext", "VNext", "Rewind", "Last", "SorterSort", "Sort", "VFilter", "Program", "Yield",
    "Gosub", "InitCoroutine", "Vacuum", "IncrVacuum", "Destroy", "Clear", "Checkpoint", "JournalMode", "SqlExec",
    "AutoCommit",
})
_SCHEMA_OPS = frozenset({"ParseSchema", "DropTable", "DropIndex", "DropTrigger", "Expire", "VCreate", "VDestroy",
                         "SqlExec"})


def classify(program: list[Any]) -> int:
    """The plan of a statement from its ``EXPLAIN`` rows (addr, opcode, p1, p2, ...)."""
    ops = {row[1] for row in program}
    data = not (ops - _CONTROL_OPS).isdisjoint(_WRITE_OPS) or any(
        row[1] == "Transaction" and row[3] for row in program)
    writes = data or not ops.isdisjoint(_CONTROL_OPS)
    last = len(program) - 1
    loops = not ops.isdisjoint(_LOOP_OPS) or any(
        row[1] == "Goto" and row[3] <= row[0] and row[0] != last for row in program)
    return (READ if not writes else LONG if loops else SHORT) | (DATA if data else 0) \
        | (SCHEMA if not ops.isdisjoint(_SCHEMA_OPS) else 0)


def error(exc: sqlite3.Error) -> SqlError:
    """sqlite3's exception as a SqlError with a Wippy kind."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (5, 6):  # BUSY, LOCKED
        return SqlError(f"database is locked: {text}", kind="UNAVAILABLE", retryable=True)
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
                  | sqlite3.DataError) or "syntax error" in text or "no such" in text or "readonly" in text:
        return SqlError(text, kind="INVALID")
    if isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (10, 13, 14, 26):
        return SqlError(text, kind="UNAVAILABLE", retryable=code & 0xFF == 10)  # IOERR, FULL, CANTOPEN, NOTADB
    return SqlError(text, kind="INVALID" if isinstance(exc, sqlite3.OperationalError) else "INTERNAL")


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (5, 6)


def split_statements(sql: str) -> list[str]:
    """Several statements in one string, split where SQLite's own tokenizer says one ends."""
    out: list[str] = []
    start = 0
    pos = sql.find(";")
    while pos >= 0:
        if sqlite3.complete_statement(sql[start:pos + 1]):
            out.append(sql[start:pos + 1])
            start = pos + 1
        pos = sql.find(";", pos + 1)
    if sql[start:].strip():
        out.append(sql[start:])
    return out


