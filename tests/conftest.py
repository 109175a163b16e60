"""Shared fixtures: a working directory holding the tiny workflow config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.workflow import tiny_config, write_config

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


@pytest.fixture
def tiny_workdir(tmp_path: Path) -> Path:
    """A working directory holding config/config.yaml with :func:`tiny_config`."""
    write_config(tmp_path, tiny_config())
    return tmp_path
