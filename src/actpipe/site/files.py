"""Writing the site's files: a directory written whole, data files, vendored scripts.

Data reach a page as JavaScript files that register themselves,
``actpipeData("runs/digits/resnet18/kmeans_k8/run", {...});``, because a page opened from
disk (``file://``) may load scripts but not ``fetch()`` JSON. The payload is JSON (ASCII
only, no NaN), so the same bytes are produced for the same data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]
DATA_KEY = re.compile(r"^[A-Za-z0-9_.~-]+(/[A-Za-z0-9_.~-]+)*$")
"""A data key: '/'-separated parts of layer-key characters (file-safe, URL-safe)."""


def dumps(data: Any) -> str:
    """Compact, ASCII-only JSON; NaN and infinities are refused (use None)."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def data_script(key: str, data: Any) -> str:
    """The text of a data file: one call of the page's ``actpipeData(key, value)``."""
    if not DATA_KEY.match(key):
        raise ValueError(f"data key {key!r} is not file-safe (build keys with layer_key)")
    return f'actpipeData("{key}",{dumps(data)});\n'


def write_text(path: PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii" if text.isascii() else "utf-8")


def file_digest(path: PathLike, length: int = 10) -> str:
    """The first ``length`` hex digits of a file's sha256 (names vendored files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:length]


def link_or_copy(source: PathLike, target: PathLike) -> None:
    """Hard-link ``source`` to ``target`` (same file system), else copy it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@contextlib.contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; it replaces ``path`` when the block succeeds.

    The temporary directory sits beside ``path`` (same file system: the rename is atomic)
    and carries the writer's pid. On an exception it is removed and ``path`` is untouched.
    A previous ``path`` is moved aside, replaced, then deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


class SiteWriter:
    """Writes the files of a site being built under ``root`` and counts them.

    Pages write their data through :meth:`data` (a key such as ``metrics/digits``, built
    from :func:`actpipe.names.layer_key` parts, becomes ``data/metrics/digits.js``) and never
    write HTML with data in it: the pages' scripts build the DOM from the data.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.files = 0
        self.bytes = 0

    def data(self, key: str, value: Any) -> str:
        """Write the data file of ``key``; return its path relative to the site root."""
        text = data_script(key, value)
        relative = f"data/{key}.js"
        write_text(self.root / relative, text)
        self.files += 1
        self.bytes += len(text)
        return relative

    def copy(self, source: PathLike, relative: str) -> str:
        """Place a file (hard link or copy) at ``relative`` under the site root."""
        link_or_copy(source, self.root / relative)
        self.files += 1
        self.bytes += os.path.getsize(source)
        return relative

    def binary(self, relative: str, data: bytes) -> str:
        """Write a file of bytes (an image rendered at build time) at ``relative``."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files += 1
        self.bytes += len(data)
        return relative

    def text(self, relative: str, text: str) -> str:
        write_text(self.root / relative, text)
        self.files += 1
        self.bytes += len(text.encode("utf-8"))
        return relative
