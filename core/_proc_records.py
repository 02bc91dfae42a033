"""Records of the ``proc`` stream: process lifecycle, messages and signals.

Subjects: messages and signals go to ``<ns>.proc.<node>`` of the addressee's node (the subject
that node consumes to feed its mailboxes); everything else (lifecycle, dead letters) goes to
``<ns>.proc.<node>.log`` of the node that writes it. The pid is always in the body. PIDs
are Wippy's strings, ``{node@host|0x00001}``.

Bodies (JSON values; ``at`` is the record's own timestamp):

    proc.spawned        {pid, entry, host, parent: pid|None, linked: bool, monitored: bool}
    proc.exited         {pid, entry, ok: bool, result: value|None, error: str|None, kind: str|None}
                        kind: the error's kind (INVALID, CANCELED, ...) when it had one
    proc.message        {to, from: pid|None, topic, payload: [value, ...], bytes: int}
                        payload values are JSON data; a binary (non-UTF-8) string is {"$bytes": base64},
                        and a table key starting with "$" is written with one more "$"
    proc.dead_letter    {to, from, topic, reason, bytes, seq}  a message no process could take; reason:
                        "no such process", "mailbox full" or "the channel for this topic is closed";
                        seq: the message record's stream position
    proc.signal         {to, from, signal: "exit"|"link_down"|"cancel"|"terminate"|"outdated",
                         result: {value|error}|None, reason: str|None}
                        what a process is told about another one (monitor EXIT, LINK_DOWN, CANCEL,
                        forced termination); consumed by the addressee's node
    proc.linked         {pid, peer}          proc.unlinked    {pid, peer}
    proc.monitored      {pid, target}        proc.demonitored {pid, target}
    proc.registered     {name, pid}          proc.unregistered {name, pid}
    proc.upgraded       {pid, from: entry id, entry: entry id}   process.upgrade replaced its code
    proc.service        {service, event: "started"|"exited"|"restarting"|"failed"|"stopped",
                         pid: pid|None, attempt: int, error: str|None, delay_ms: int|None}

Every type is at schema 1.
"""

from __future__ import annotations

from typing import Final

from ._records import register_type

SPAWNED: Final = "proc.spawned"
EXITED: Final = "proc.exited"
MESSAGE: Final = "proc.message"
DEAD_LETTER: Final = "proc.dead_letter"
SIGNAL: Final = "proc.signal"
LINKED: Final = "proc.linked"
UNLINKED: Final = "proc.unlinked"
MONITORED: Final = "proc.monitored"
DEMONITORED: Final = "proc.demonitored"
REGISTERED: Final = "proc.registered"
UNREGISTERED: Final = "proc.unregistered"
SERVICE: Final = "proc.service"
UPGRADED: Final = "proc.upgraded"

PROC_TYPES: Final = (SPAWNED, EXITED, MESSAGE, DEAD_LETTER, SIGNAL, LINKED, UNLINKED, MONITORED, DEMONITORED,
                     REGISTERED, UNREGISTERED, SERVICE, UPGRADED)


def node_of(pid: str) -> str | None:
    """The node in a pid ``{node@host|id}``; None for the node-less form ``{host|id}``."""
    if not (pid.startswith("{") and pid.endswith("}")):
        return None
    body = pid[1:-1]
    node, at, _rest = body.partition("@")
    return node if at else None

for _type in PROC_TYPES:
    register_type(_type, 1)
