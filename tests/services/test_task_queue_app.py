"""An app of the task-queue shape, end to end on a real node: an HTTP endpoint publishes jobs to a
memory queue, a consumer stores results in SQLite through the query builder, another endpoint
lists them (the data modules together, as Wippy's 14-task-queue example uses them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from wippy.services import Node, RuntimeSettings, StateDir

APP = """version: "1.0"
namespace: jobs
entries:
  - {name: db, kind: db.sql.sqlite, file: ":memory:"}
  - {name: driver, kind: queue.driver.memory}
  - {name: work, kind: queue.queue, driver: jobs:driver}
  - {name: procs, kind: process.host, lifecycle: {auto_start: true}}
  - {name: web, kind: http.service, addr: "127.0.0.1:0", lifecycle: {auto_start: true}}
  - {name: api, kind: http.router, meta: {server: jobs:web}}
  - name: schema
    kind: process.lua
    method: main
    modules: [sql]
    source: |
      local sql = require("sql")
      return {main = function()
        local db = assert(sql.get("jobs:db"))
        local _, err = db:execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT, out TEXT, "
          .. "state TEXT)")
        db:release()
        if err then error(err) end
        return 0
      end}
  - {name: schema_run, kind: process.service, process: jobs:schema, host: jobs:procs,
     lifecycle: {auto_start: true}}
  - name: submit
    kind: function.lua
    method: handler
    modules: [http, queue, uuid]
    source: |
      local http, queue, uuid = require("http"), require("queue"), require("uuid")
      return {handler = function()
        local req, res = http.request(), http.response()
        local body, err = req:body_json()
        if err or not body.kind then
          res:set_status(400)
          return res:write_json({error = "kind required"})
        end
        local id = uuid.v4()
        local _, perr = queue.publish("jobs:work", {id = id, kind = body.kind, args = body.args or {}})
        if perr then
          res:set_status(500)
          return res:write_json({error = tostring(perr)})
        end
        res:set_status(202)
        res:write_json({id = id})
      end}
  - name: list
    kind: function.lua
    method: handler
    modules: [http, sql]
    source: |
      local http, sql = require("http"), require("sql")
      return {handler = function()
        local req, res = http.request(), http.response()
        local db = assert(sql.get("jobs:db"))
        local q = sql.builder.select("id", "kind", "out", "state"):from("jobs"):order_by("id")
        local state = req:query("state")
        if state then q = q:where({state = state}) end
        local rows, err = q:run_with(db):query()
        db:release()
        if err then
          res:set_status(500)
          return res:write_json({error = tostring(err)})
        end
        res:write_json({jobs = rows, count = #rows})
      end}
  - name: worker
    kind: function.lua
    method: main
    modules: [sql, json, queue]
    source: |
      local sql, json, queue = require("sql"), require("json"), require("queue")
      return {main = function(job)
        local msg = assert(queue.message())
        local out
        if job.kind == "concat" then out = table.concat(job.args, "+")
        elseif job.kind == "fail" then return false
        else out = "done" end
        local db = assert(sql.get("jobs:db"))
        local _, err = sql.builder.insert("jobs"):columns("id", "kind", "out", "state")
          :values(job.id, job.kind, json.encode({out = out, msg = msg:id() ~= nil}), "ok")
          :run_with(db):exec()
        db:release()
        if err then return nil, err end
        return true
      end}
  - {name: submit.ep, kind: http.endpoint, meta: {router: jobs:api}, method: POST, path: /jobs, func: jobs:submit}
  - {name: list.ep, kind: http.endpoint, meta: {router: jobs:api}, method: GET, path: /jobs, func: jobs:list}
  - {name: consumer, kind: queue.consumer, queue: jobs:work, func: jobs:worker, concurrency: 8,
     prefetch: 16, lifecycle: {auto_start: true}}
"""


@pytest.fixture
async def site(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[str]:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "_index.yaml").write_text(APP)
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply_files(app)
            await node.start_services()
            assert node.http is not None
            yield f"http://127.0.0.1:{node.http.port('jobs:web')}"
    finally:
        state.release()


async def test_jobs_flow_from_http_through_the_queue_into_sqlite(site: str) -> None:
    async with aiohttp.ClientSession() as s:
        ids = []
        for i in range(20):
            async with s.post(f"{site}/jobs", json={"kind": "concat", "args": [str(i), "x"]}) as r:
                assert r.status == 202
                ids.append((await r.json())["id"])
        async with s.post(f"{site}/jobs", json={"args": []}) as r:
            assert r.status == 400 and (await r.json())["error"] == "kind required"
        async with asyncio.timeout(20):
            while True:
                async with s.get(f"{site}/jobs", params={"state": "ok"}) as r:
                    listed = await r.json()
                if listed["count"] == 20:
                    break
                await asyncio.sleep(0.05)
        assert sorted(j["id"] for j in listed["jobs"]) == sorted(ids)
        first = next(j for j in listed["jobs"] if j["id"] == ids[3])
        assert first["kind"] == "concat" and json.loads(first["out"]) == {"msg": True, "out": "3+x"}
        async with s.get(f"{site}/jobs", params={"state": "nope"}) as r:
            assert await r.json() == {"jobs": [], "count": 0}
