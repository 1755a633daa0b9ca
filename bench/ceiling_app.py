"""The ceiling: a bare Starlette app answering the hot-path GETs with the same JSON bytes
pollable answers, looked up by path. No authentication, no store, no validation.

    python -m bench.ceiling_app --bodies bodies.json --port 8124

``bodies.json`` maps a request path (``/api/v1/jobs/<id>``, ``/v2/jobs/<id>``) to the
body to send. It runs under uvicorn exactly like ``bench.serve`` runs pollable.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .marks import marked


def build(bodies: Mapping[str, bytes]) -> Starlette:
    async def job(request: Request) -> Response:
        body = bodies.get(request.url.path)
        if body is None:
            return Response(b'{"detail":"Job not found"}', 404, media_type="application/json")
        return Response(body, media_type="application/json")

    return Starlette(
        routes=[
            Route("/api/v1/jobs/{job_id}", job, methods=["GET"]),
            Route("/v2/jobs/{job_id}", job, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling_app")
    parser.add_argument("--bodies", required=True, help="JSON file: {path: body text}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--marks", action="store_true", help="see bench.serve --marks")
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    args = parser.parse_args(argv)
    with open(args.bodies, encoding="utf-8") as handle:
        bodies = {path: text.encode() for path, text in json.load(handle).items()}
    app = build(bodies)
    uvicorn.run(
        marked(app) if args.marks else app,
        host=args.host,
        port=args.port,
        loop=args.loop,
        http=args.http,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
