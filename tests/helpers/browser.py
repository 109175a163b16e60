"""Debian's Chromium for the browser tests: where it is, how it starts, and installing it
(tests/browser/install.sh) when it is missing. Nothing is ever downloaded by Playwright."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.workflow import REPO

CHROMIUM = os.environ.get("ACTPIPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def ensure_chromium() -> str:
    """The path of Chromium, installed with apt first when missing; the test is skipped only
    where it cannot be installed (install.sh exits 3 and says why)."""
    if not Path(CHROMIUM).exists():
        proc = subprocess.run(
            ["bash", str(REPO / "tests" / "browser" / "install.sh")],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 3:
            pytest.skip(proc.stderr.strip())
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return CHROMIUM
