"""``jobstatus serve``: the web endpoint and dashboard under uvicorn.

Importable without the web extra (``jobstatus --help`` lists ``serve`` on
any install); Starlette and uvicorn are imported when the command runs, and
their absence names the extra to install.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Final

from .._config import STORE_ENV, settings
from ..stores.base import require
from ._exit_codes import EXIT_OK
from ._store import SHARES

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``serve`` to ``jobstatus``'s subcommands."""
    serve = commands.add_parser(
        "serve",
        parents=list(parents),
        help="serve the status endpoint and dashboard",
        description="Serve the JSON endpoint, the live job pages and (with --public) the "
        "listing and dashboard, with uvicorn, until interrupted. Needs the web extra: "
        "pip install 'jobstatus[web]'. The store must be the one your workers write to "
        "(memory:// is refused).",
        epilog="examples:\n  jobstatus serve --public\n"
        "  jobstatus serve --store redis://localhost:6379/0 --port 8001 --expose exception",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument(
        "--public",
        action="store_true",
        help="serve the listing and dashboard to anyone who can reach the port",
    )
    serve.add_argument(
        "--expose",
        action="append",
        default=[],
        metavar="KEY",
        help="serve a private key anyway (exception, serialized_job); repeatable",
    )
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics (needs jobstatus[prometheus])",
    )
    serve.set_defaults(handler=command_serve, store_use=SHARES)


def command_serve(args: argparse.Namespace) -> int:
    """Run the endpoint with uvicorn until interrupted."""
    uvicorn: Any = require("uvicorn", "web")
    require("starlette", "web")
    # The web extra is optional: imported here, once it is known to be installed.
    from ..web.app import create_app

    if args.metrics:
        require("prometheus_client", "prometheus")
    app = create_app(
        store=settings.store(), public=args.public, expose=args.expose, metrics=args.metrics
    )
    where = f"http://{args.host}:{args.port}/"
    print(
        f"jobstatus: serving {settings.store().describe()} at {where}"
        + ("" if args.public else " (listing and dashboard off: pass --public)"),
        file=sys.stderr,
        flush=True,
    )
    if settings.is_per_user_default(settings.store()):
        print(
            "jobstatus: that is this user's default file: workers running as another user "
            f"or in a container write elsewhere (give them and serve the same {STORE_ENV})",
            file=sys.stderr,
            flush=True,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK
