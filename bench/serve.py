"""Run pollable under uvicorn for a benchmark: one worker, loop/http "auto" (uvloop and
httptools when installed) with the bounds ``pollable serve`` sets (server/protocol.py), no
access log.

    python -m bench.serve --store sqlite:////tmp/x.db --port 8123 [--no-validate-responses]
        [--no-request-log]

Settings are built from the flags only (no ``POLLABLE_*`` variables), so a benchmark is not
changed by the caller's environment. This stands in for the server CLI: what runs is the
same ``create_app(Settings)``.
"""

from __future__ import annotations

import argparse

import uvicorn

from pollable.server.app import create_app
from pollable.server.protocol import PROTOCOLS, uvicorn_options
from pollable.server.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=None)
    parser.add_argument("--no-validate-responses", action="store_true")
    parser.add_argument("--no-request-log", action="store_true")
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto", choices=sorted(PROTOCOLS))
    args = parser.parse_args(argv)
    settings = Settings.build(
        {},
        store=args.store,
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        validate_responses=False if args.no_validate_responses else None,
        log_enabled=False if args.no_request_log else None,
        log_level="warning",
        # One tenant's load is the benchmark: its rate limit never refuses, but is checked.
        rate_limit=1e9,
        rate_burst=10**9,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=args.loop,
        workers=1,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        **uvicorn_options(settings, args.http),
    )


if __name__ == "__main__":
    main()
