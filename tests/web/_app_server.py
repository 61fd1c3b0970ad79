"""``create_app`` under uvicorn, with the hooks a browser test asks for.

    python -m tests.web._app_server --store URL --port N [--public] [--cancel]
        [--delete] [--operator] [--cors ORIGIN] [--expose KEY] [--mount /status]

``--cancel``, ``--delete`` and ``--operator`` give hooks that say yes to every
request, so the browser tests exercise the routes' own checks (same origin,
JSON body), which no hook can turn off.
"""

from __future__ import annotations

import argparse
from typing import Any


def yes(request: Any, *args: Any) -> bool:
    return True


def build(args: argparse.Namespace) -> Any:
    import jobstatus.web

    app = jobstatus.web.create_app(
        store=args.store,
        public=args.public,
        expose=args.expose,
        can_cancel=yes if args.cancel else None,
        can_delete=yes if args.delete else None,
        operator=yes if args.operator else None,
        cors_origins=args.cors,
        poll_interval=0.05,
    )
    if args.mount == "/":
        return app
    from starlette.applications import Starlette
    from starlette.routing import Mount

    return Starlette(routes=[Mount(args.mount, app)])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public", action="store_true")
    parser.add_argument("--cancel", action="store_true")
    parser.add_argument("--delete", action="store_true")
    parser.add_argument("--operator", action="store_true")
    parser.add_argument("--cors", action="append", default=[])
    parser.add_argument("--expose", action="append", default=[])
    parser.add_argument("--mount", default="/")
    args = parser.parse_args()
    uvicorn.run(build(args), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
