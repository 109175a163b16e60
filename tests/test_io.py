"""File helpers: the checksum cache shared by jobs reading the same large file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from actpipe._io import sha256_file


def test_cached_sha256_equals_hashlib_and_follows_rewrites(tmp_path: Path) -> None:
    data = tmp_path / "acts.h5"
    data.write_bytes(b"a" * 3_000_000)
    cache = tmp_path / "cache"
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    assert sha256_file(data, cache_dir=cache) == expected
    assert len(list(cache.iterdir())) == 1

    # A cache hit does not read the file: a planted digest with the file's key is returned.
    entry = next(cache.iterdir())
    entry.write_text(entry.read_text().replace(expected, "0" * 64))
    assert sha256_file(data, cache_dir=cache) == "0" * 64
    assert sha256_file(data) == expected  # without the cache the file is read

    # A rewritten file (new content, replaced like every output) has a new key: read again.
    new = tmp_path / "new.h5"
    new.write_bytes(b"b" * 3_000_000)
    os.replace(new, data)
    assert sha256_file(data, cache_dir=cache) == hashlib.sha256(b"b" * 3_000_000).hexdigest()
