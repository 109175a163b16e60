"""Small file helpers shared by every stage: atomic outputs, JSON and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary_path(path: str | os.PathLike[str]) -> Path:
    """The name an output is written under until it is complete.

    It sits in the same directory as ``path`` (so the final rename is atomic) and carries
    the writer's pid, so two writers never share it.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only when the block succeeds.

    A crash, an exception or a kill inside the block leaves ``path`` untouched: either the
    previous complete file or nothing. The temporary file is removed on exceptions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 1) -> None:
    """Write JSON atomically (sorted keys are not forced: order is meaningful here)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent)
            fh.write("\n")


def sha256_file(
    path: str | os.PathLike[str],
    chunk_size: int = 1 << 20,
    cache_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Hex sha256 of a file, read in chunks.

    With ``cache_dir``, the digest is kept there keyed by the file's absolute path, inode,
    size and modification time (ns), so jobs that checksum the same large file (one per
    parameter set) read it once; a rewritten file has a new key and is read again.
    """
    stat = os.stat(path)
    key = [os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns]
    cache = None
    if cache_dir is not None:
        name = hashlib.sha256(key[0].encode()).hexdigest()[:32]
        cache = Path(cache_dir) / f"{name}.json"
        with contextlib.suppress(OSError, ValueError):
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                return str(cached["sha256"])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    if cache is not None:
        write_json(cache, {"key": key, "sha256": digest.hexdigest()})
    return digest.hexdigest()
