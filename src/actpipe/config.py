"""The canonical form of a workflow config: what a config *means*, written one way.

Snakemake reruns a job when a parameter's written form changes. Two configs that mean the
same (keys in another order, a default written out, ``1`` for ``1.0``, a layer given as
``layer1`` or ``{name: layer1}``) must give the same parameters, so rules get the canonical
form of their config block: schema defaults filled in (Snakemake's ``validate`` does this),
mapping keys sorted, numbers typed as the schema says, layer entries spelled out.

Standard library only: the Snakefile uses it at parse time.
"""

from __future__ import annotations

from typing import Any

from .names import entry_names

Schema = dict[str, Any]

EXTRACTION_RUN_KEYS = ("progress", "checkpoint_seconds", "resume", "tune_malloc")
"""Extraction settings that change how a job runs, not what it computes: passed to the job
but not compared by Snakemake, so changing them reruns nothing."""

MODEL_RUN_KEYS = ("resources",)
"""Model block keys that only say what a job asks a cluster for."""


def _resolve(schema: Schema, root: Schema) -> Schema:
    """``schema`` with a ``$ref`` into ``root['$defs']`` followed (repeatedly)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"schema reference {ref!r} is not local")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **extra}
    return schema if isinstance(schema, dict) else {}


def _types(schema: Schema) -> set[str]:
    kind = schema.get("type")
    types = {kind} if isinstance(kind, str) else set(kind or ())
    if "properties" in schema or "additionalProperties" in schema:
        types.add("object")
    if "items" in schema:
        types.add("array")
    if "const" in schema:
        types.add(_json_type(schema["const"]))
    for value in schema.get("enum", []):
        types.add(_json_type(value))
    return types


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _matches(value: Any, schema: Schema) -> bool:
    """Whether ``value``'s JSON type fits ``schema`` (enough to pick a ``oneOf`` branch)."""
    types = _types(schema)
    if not types:
        return True
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def _branches(value: Any, schema: Schema, root: Schema) -> list[Schema]:
    """``schema`` and the subschemas that apply to ``value``: the fitting ``oneOf``/``anyOf``
    branch, every ``allOf`` part, and ``then``/``else`` of an ``if`` on a ``const``."""
    schema = _resolve(schema, root)
    parts = [schema]
    for key in ("oneOf", "anyOf"):
        options = [_resolve(s, root) for s in schema.get(key, [])]
        fitting = [s for s in options if _matches(value, s)]
        if fitting:
            parts += _branches(value, fitting[0], root)
    for sub in schema.get("allOf", []):
        parts += _branches(value, sub, root)
    if "if" in schema:
        branch = schema.get("then") if _if_holds(value, schema["if"]) else schema.get("else")
        if branch:
            parts += _branches(value, branch, root)
    return parts


def _if_holds(value: Any, condition: Schema) -> bool:
    """``if: {properties: {key: {const: x}}}``: whether ``value[key] == x``."""
    if not isinstance(value, dict):
        return False
    for key, sub in condition.get("properties", {}).items():
        if "const" in sub and value.get(key) != sub["const"]:
            return False
    return True


def canonical(value: Any, schema: Schema, root: Schema | None = None) -> Any:
    """``value`` (a validated config or part of one) in canonical form under ``schema``.

    Mappings get sorted keys; numbers become ``float`` where the schema says ``number``
    (and not ``integer``), ``int`` where it says ``integer`` and the value is whole;
    everything else is kept.
    """
    root = schema if root is None else root
    parts = _branches(value, schema, root)
    if isinstance(value, dict):
        properties: dict[str, Schema] = {}
        extra: Schema = {}
        for part in parts:
            properties.update(part.get("properties", {}))
            if isinstance(part.get("additionalProperties"), dict):
                extra = part["additionalProperties"]
        return {
            key: canonical(value[key], properties.get(key, extra), root) for key in sorted(value)
        }
    if isinstance(value, list):
        items = next((p["items"] for p in parts if isinstance(p.get("items"), dict)), {})
        return [canonical(v, items, root) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    types = set().union(*(_types(p) for p in parts))
    if "integer" in types and float(value).is_integer():
        return int(value)
    if "number" in types:
        return float(value)
    return value


def canonical_layers(entries: Any, default_reduce: str, where: str = "") -> Any:
    """A model block's ``layers:`` spelled out: ``{name, reduce}`` (plus ``as`` when the layer
    goes by another name) for every entry; ``auto`` stays ``auto``."""
    if entries == "auto":
        return entries
    out = []
    for entry, (name, module) in zip(entries, entry_names(entries, where), strict=True):
        reduce = entry.get("reduce", default_reduce) if isinstance(entry, dict) else default_reduce
        spelled = {"name": module, "reduce": reduce}
        if name != module:
            spelled = {"as": name, **spelled}
        out.append(spelled)
    return out


def canonical_model(block: dict[str, Any], schema: Schema, where: str = "") -> dict[str, Any]:
    """A model block in canonical form (layer entries spelled out)."""
    out = canonical(block, schema.get("$defs", {}).get("model", {}), schema)
    out["layers"] = canonical_layers(out["layers"], out.get("reduce", "flatten"), where)
    return out


def model_params(block: dict[str, Any]) -> dict[str, Any]:
    """What of a (canonical) model block decides what its jobs compute."""
    return {k: v for k, v in block.items() if k not in MODEL_RUN_KEYS}


def split_extraction(block: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(what is computed, how the job runs)`` of a canonical ``extraction:`` block."""
    computed = {k: v for k, v in block.items() if k not in EXTRACTION_RUN_KEYS}
    run = {k: v for k, v in block.items() if k in EXTRACTION_RUN_KEYS}
    return computed, run
