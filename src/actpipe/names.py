"""Names: layer keys and the "no such name, did you mean" messages.

Standard library only: the Snakefile imports this module at parse time.

**Layer keys.** A layer name is whatever the user or the model calls a layer: a torch module
name (``layer4.1.conv2``), an ONNX tensor name as exporters write it
(``/conv/conv.6/Relu_output_0``, ``model/conv2d/Relu:0``), a probe (``blocks.3.attn.z``), or a
short name of the user's own. Its *layer key* is the same name made safe for HDF5 dataset
names, file names and Snakemake wildcards: ASCII letters, digits, ``_``, ``.`` and ``-`` are
kept; every other character (and a leading ``.`` or ``-``, a trailing ``.``, and ``~``
itself) becomes ``~`` followed by the two upper-case hex digits of each of its UTF-8 bytes.
So ``/conv/conv.6/Relu_output_0`` is stored as ``~2Fconv~2Fconv.6~2FRelu_output_0`` and
``layer4.1.conv2`` as itself. The encoding is reversible (:func:`layer_name`), stable across
versions, and injective: two different names never share a key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

ESCAPE = "~"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_HEX = frozenset("0123456789ABCDEF")
MAX_KEY_BYTES = 200
"""Longest key accepted: file names are limited to 255 bytes, and keys get suffixes."""


def _escape(ch: str) -> str:
    return "".join(f"{ESCAPE}{b:02X}" for b in ch.encode("utf-8"))


def layer_key(name: str) -> str:
    """The layer key of ``name`` (see the module docstring); ``ValueError`` if unusable."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a layer name must be a non-empty string, got {name!r}")
    last = len(name) - 1
    parts = []
    for i, ch in enumerate(name):
        keep = ch in _SAFE and not (i == 0 and ch in ".-") and not (i == last and ch == ".")
        parts.append(ch if keep else _escape(ch))
    key = "".join(parts)
    if len(key.encode("ascii")) > MAX_KEY_BYTES:
        raise ValueError(
            f"layer name {name!r} is too long to name files ({len(key)} characters once "
            f"encoded, at most {MAX_KEY_BYTES}); give the layer a short name with 'as:'"
        )
    return key


def layer_name(key: str) -> str:
    """The layer name a key encodes (the inverse of :func:`layer_key`).

    A string that :func:`layer_key` would not produce (a bad escape, a character that should
    have been escaped) is a ``ValueError``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"a layer key must be a non-empty string, got {key!r}")
    raw = bytearray()
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == ESCAPE:
            digits = key[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise ValueError(f"{key!r} is not a layer key: bad escape at position {i}")
            raw.append(int(digits, 16))
            i += 3
        elif ch in _SAFE:
            raw.append(ord(ch))
            i += 1
        else:
            raise ValueError(f"{key!r} is not a layer key: {ch!r} must be escaped")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{key!r} is not a layer key: escapes are not UTF-8") from exc
    if layer_key(name) != key:
        raise ValueError(f"{key!r} is not a layer key (the key of {name!r} is {layer_key(name)!r})")
    return name


def is_layer_key(text: str) -> bool:
    """Whether ``text`` is the key of some layer name."""
    try:
        layer_name(text)
    except ValueError:
        return False
    return True


def entry_names(entries: Iterable[object], where: str = "") -> list[tuple[str, str]]:
    """``(name, module)`` of each entry of a model block's ``layers:`` list.

    An entry is a module (or ONNX tensor) name, or a mapping ``{name: module, as: short, ...}``;
    the layer goes by ``as`` when given. Names must be usable as keys (:func:`layer_key`) and
    unique, also compared without letter case (the files of two names differing only in case
    would overwrite each other on macOS and Windows): a ``ValueError`` names both entries.
    """
    prefix = f"{where}: " if where else ""
    out: list[tuple[str, str]] = []
    seen: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if isinstance(entry, str):
            module, alias = entry, None
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            module, alias = entry["name"], entry.get("as")
        else:
            raise ValueError(f"{prefix}a layer entry is a name or {{name: ..}}, got {entry!r}")
        name = alias if isinstance(alias, str) and alias else module
        try:
            folded = layer_key(name).casefold()
        except ValueError as exc:
            raise ValueError(f"{prefix}{exc}") from exc
        other = seen.setdefault(folded, (name, module))
        if other != (name, module) or (name, module) in out:
            why = (
                f"both go by the name {name!r}"
                if other[0] == name
                else "differ only in letter case, so their files would overwrite each other on "
                "case-insensitive file systems"
            )
            raise ValueError(
                f"{prefix}layer entries {_entry_text(*other)} and {_entry_text(name, module)} "
                f"{why}; give one of them another name with 'as:'"
            )
        out.append((name, module))
    return out


def _entry_text(name: str, module: str) -> str:
    return repr(name) if name == module else f"{{name: {module!r}, as: {name!r}}}"


# --------------------------------------------------------------------------- did you mean


def closest_names(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """The candidates most similar to ``name`` (for 'did you mean' messages)."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    if not close:
        lowered = name.lower()
        close = [c for c in candidates if lowered in c.lower() or c.lower() in lowered][:n]
    return close


def did_you_mean(name: str, candidates: Sequence[str], what: str) -> str:
    """A phrase listing close matches, or a few valid names when nothing is close."""
    candidates = list(candidates)
    close = closest_names(str(name), candidates)
    if close:
        return f"closest {what}: {', '.join(close)}"
    if not candidates:
        return f"there are no {what}"
    shown = candidates[:10]
    more = "" if len(candidates) <= 10 else f" (and {len(candidates) - 10} more)"
    return f"available {what}: {', '.join(shown)}{more}"


_PLURALS = {"stimulus": "stimulus ids"}


def no_such(
    kind: str, name: object, candidates: Sequence[str], where: str = "", hint: str = ""
) -> str:
    """The one message for a name that is not there: ``"{where}: no {kind} 'x'; closest ..."``.

    ``kind`` is singular (``model``, ``layer``, ``stimulus``, ``tensor``); ``name`` may be a
    list of names (all missing; the first is matched). ``hint`` is appended in parentheses
    (what to run to list them all).
    """
    prefix = f"{where}: " if where else ""
    tail = f" ({hint})" if hint else ""
    plural = _PLURALS.get(kind, kind + "s")
    if isinstance(name, list | tuple):
        more = f" (and {len(name) - 10} more)" if len(name) > 10 else ""
        shown = ", ".join(map(repr, name[:10])) + more
        first = str(name[0]) if name else ""
    else:
        shown, first = repr(name), str(name)
    return f"{prefix}no {kind} {shown}; {did_you_mean(first, candidates, plural)}{tail}"
