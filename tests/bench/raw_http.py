"""The raw baseline for the HTTP benchmarks: an aiohttp hello world (JSON body) on uvloop.

    python raw_http.py PORT

Listens on 127.0.0.1:PORT with SO_REUSEPORT (start it twice for two workers) until killed.
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web

BODY = orjson.dumps({"message": "hello world"})


async def hello(_request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/hello", hello)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), reuse_port=True, access_log=None, print=None)


if __name__ == "__main__":
    main()
