"""``actpipe serve [RESULTS_DIR]``: the results site on http://127.0.0.1:PORT/."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the results site on localhost",
        description="Serve the site that the workflow built (RESULTS_DIR/site, or a site "
        "folder) on http://127.0.0.1:PORT/ until Ctrl-C. The site also opens straight from "
        "disk: RESULTS_DIR/site/index.html.",
    )
    parser.add_argument(
        "results",
        nargs="?",
        default="results",
        metavar="RESULTS_DIR",
        help="results folder holding site/, or the site folder itself (default: results)",
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0: any free)"
    )
    parser.add_argument("--open", action="store_true", help="open the site in a web browser")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..site.serve import serve

    serve(args.results, port=args.port, open_browser=args.open)
    return 0
