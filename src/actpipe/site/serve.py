"""``actpipe serve``: the site on http://127.0.0.1 for those who prefer a URL to a file.

The site works from disk as it is; serving it changes nothing but the address. The server is
Python's standard ``http.server``, bound to 127.0.0.1 only (reach it from another machine
through an SSH tunnel: ``ssh -L 8000:127.0.0.1:8000 host``), serving the site folder and
nothing outside it.
"""

from __future__ import annotations

import functools
import os
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]
HOST = "127.0.0.1"


def site_folder(path: PathLike) -> Path:
    """The site folder of ``path``: the folder itself when it holds ``index.html``, else its
    ``site/`` (a results folder)."""
    path = Path(path)
    for candidate in (path, path / "site"):
        if (candidate / "index.html").is_file() and (candidate / "data" / "index.js").is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no site here (looked for index.html in {path} and {path / 'site'}); build it "
        "with the workflow (snakemake --cores 2, rule build_site) or "
        "actpipe.site.build_site(results_dir)"
    )


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files of the site folder, with types for WebP and JavaScript, no caching."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".webp": "image/webp",
        ".css": "text/css",
        ".html": "text/html",
        ".json": "application/json",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "quiet", False):
            return
        super().log_message(format, *args)


def make_server(path: PathLike, port: int = 8000, quiet: bool = False) -> ThreadingHTTPServer:
    """A server of the site of ``path`` on 127.0.0.1 (``port`` 0: any free port)."""
    folder = site_folder(path)
    handler = functools.partial(SiteHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer((HOST, int(port)), handler)
    except OSError as exc:
        raise OSError(
            f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another port with --port"
        ) from exc
    server.quiet = quiet  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve(path: PathLike = "results", port: int = 8000, open_browser: bool = False) -> None:
    """Serve the site of ``path`` until interrupted (Ctrl-C)."""
    server = make_server(path, port)
    url = url_of(server)
    print(f"Serving {site_folder(path)} at {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
