"""The files of the similarity analysis: ``rdms.h5``, ``compare.h5``, ``compare.tsv``.

``results/similarity/{set}/{model}/rdms.h5`` (one model on one stimulus set)::

    /                                        attrs (below)
    /stimuli/stimulus_ids                    (n,) UTF-8: the stimuli of the stimulus RDMs
    /stimuli/rows                            (n,) int64: their rows in the activation file
    /stimuli/labels/{label key}              (n,) UTF-8: each stimulus's value ("" = none)
    /stimulus/{distance}/{layer key}         (n(n-1)/2,) float64: condensed stimulus RDM
    /labels/{label key}/values               (c,) UTF-8: the label's values (conditions)
    /labels/{label key}/counts               (c,) int64: stimuli per condition
    /labels/{label key}/{distance}/{layer key}   (c(c-1)/2,) float64: condensed condition RDM

``results/similarity/{set}/compare.h5`` (every model of a set)::

    /layers/model, /layers/layer             (N,) UTF-8: model and layer of row/column i
    /layers/index, /layers/depth             (N,): position in the model, index / (layers - 1)
    /layers/feature_dim                      (N,) int64
    /cka/matrix                              (N, N) float64: linear CKA (unbiased HSIC)
    /cka/estimator                           (N,) UTF-8: "exact" or "sketch{k}x2" per layer
    /rsa/{distance}/{method}                 (N, N) float64: RSA between stimulus RDMs
    /theory/{label key}/{distance}/{method}  (N,) float64: each layer vs the label's theory RDM
    /rsa_stimulus_ids                        (n,) UTF-8: the stimuli of the RSA comparisons

Layer and label names are stored as HDF5 names through :func:`actpipe.names.layer_key`
(reversible; ``name``/``label`` attributes hold the original). Condensed RDMs follow
``scipy.spatial.distance.squareform``. Nested attributes are JSON text.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from .._io import atomic_output
from ..names import layer_key, no_such
from .distances import RSATOOLBOX_NAMES, n_from_pairs, row_offsets
from .errors import NotFound
from .labels import StimulusLabels

PathLike = str | os.PathLike[str]
FORMAT_VERSION = 1
RDMS_KIND = "actpipe-rdms"
COMPARE_KIND = "actpipe-similarity-compare"
STR = h5py.string_dtype("utf-8")
TSV_COLUMNS = (
    "kind",
    "model_a",
    "layer_a",
    "model_b",
    "layer_b",
    "label",
    "measure",
    "distance",
    "value",
    "n_stimuli",
    "estimator",
)


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def _read_strings(dset: h5py.Dataset) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in dset[()]]


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value[:1] in "[{n" and value not in ("",):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_kind(f: h5py.File, path: PathLike, kind: str) -> None:
    found = f.attrs.get("kind")
    found = found.decode() if isinstance(found, bytes) else found
    if found != kind:
        raise ValueError(
            f"{path}: not an actpipe {kind!r} file (kind {found!r}); "
            + (
                "give an rdms.h5 written by compute_rdms / `actpipe rdm --out`"
                if kind == RDMS_KIND
                else "give a compare.h5 written by compare_layers"
            )
        )
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version} is newer than this actpipe reads "
            f"({FORMAT_VERSION}); upgrade actpipe"
        )


# --------------------------------------------------------------------------- rdms.h5


class RDMWriter:
    """Writes an ``rdms.h5`` layer by layer into ``path`` (the caller's temporary file)."""

    def __init__(
        self,
        path: PathLike,
        attrs: dict[str, Any],
        stimulus_ids: Sequence[str],
        rows: np.ndarray,
        labels: StimulusLabels,
    ) -> None:
        self.path = Path(path)
        self.f = h5py.File(self.path, "w")
        self.f.attrs["kind"] = RDMS_KIND
        self.f.attrs["format_version"] = FORMAT_VERSION
        self.f.attrs["producer"] = f"actpipe {__version__}"
        for key, value in attrs.items():
            self.f.attrs[key] = _attr(value)
        group = self.f.create_group("stimuli")
        group.create_dataset("stimulus_ids", data=_strings(stimulus_ids), dtype=STR)
        group.create_dataset("rows", data=np.asarray(rows, dtype=np.int64))
        lab = group.create_group("labels")
        for name, values in labels.columns.items():
            dset = lab.create_dataset(layer_key(name), data=_strings(values), dtype=STR)
            dset.attrs["label"] = name

    def __enter__(self) -> RDMWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def add_stimulus_rdm(
        self, layer: str, distance: str, rdm: np.ndarray, attrs: dict[str, Any]
    ) -> None:
        group = self.f.require_group(f"stimulus/{distance}")
        dset = group.create_dataset(layer_key(layer), data=np.asarray(rdm, dtype=np.float64))
        dset.attrs["name"] = layer
        dset.attrs["distance"] = distance
        for key, value in attrs.items():
            dset.attrs[key] = _attr(value)

    def add_conditions(
        self, label: str, values: Sequence[str], counts: np.ndarray, n_unlabelled: int
    ) -> None:
        key = layer_key(label)
        if key in self.f.get("labels", {}):
            return
        group = self.f.require_group("labels").create_group(key)
        group.attrs["label"] = label
        group.attrs["n_unlabelled"] = int(n_unlabelled)
        group.create_dataset("values", data=_strings(values), dtype=STR)
        group.create_dataset("counts", data=np.asarray(counts, dtype=np.int64))

    def add_condition_rdm(
        self, label: str, layer: str, distance: str, rdm: np.ndarray, attrs: dict[str, Any]
    ) -> None:
        group = self.f[f"labels/{layer_key(label)}"].require_group(distance)
        dset = group.create_dataset(layer_key(layer), data=np.asarray(rdm, dtype=np.float64))
        dset.attrs["name"] = layer
        dset.attrs["distance"] = distance
        for key, value in attrs.items():
            dset.attrs[key] = _attr(value)

    def set_attrs(self, **attrs: Any) -> None:
        for key, value in attrs.items():
            self.f.attrs[key] = _attr(value)


class RDMFile:
    """Read access to an ``rdms.h5``; open with ``with RDMFile(path) as rdms: ...``."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such RDM file")
        self.f = h5py.File(self.path, "r")
        try:
            _check_kind(self.f, self.path, RDMS_KIND)
        except BaseException:
            self.f.close()
            raise
        self.attrs = {k: _decode(v) for k, v in self.f.attrs.items()}

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> RDMFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str:
        return str(self.attrs["model"])

    @property
    def layers(self) -> list[str]:
        return list(self.attrs["layers"])

    @property
    def distances(self) -> list[str]:
        return list(self.attrs["distances"])

    @property
    def stimulus_ids(self) -> list[str]:
        return _read_strings(self.f["stimuli/stimulus_ids"])

    @property
    def labels(self) -> StimulusLabels:
        group = self.f["stimuli/labels"]
        columns = {}
        for key in group:
            dset = group[key]
            columns[str(_decode(dset.attrs["label"]))] = _read_strings(dset)
        ordered = [c for c in self.attrs.get("labels", []) if c in columns]
        ordered += [c for c in columns if c not in ordered]
        return StimulusLabels(self.stimulus_ids, {c: columns[c] for c in ordered}, str(self.path))

    def _check(self, layer: str, distance: str) -> None:
        if distance not in self.distances:
            raise NotFound(no_such("distance", distance, self.distances, str(self.path)))
        if layer not in self.layers:
            raise NotFound(
                no_such(
                    "layer",
                    layer,
                    self.layers,
                    f"{self.path} (model {self.model!r})",
                    "`actpipe inspect` lists the layers of the activation file",
                )
            )

    def stimulus_rdm(self, layer: str, distance: str | None = None) -> np.ndarray:
        """The condensed stimulus RDM of ``layer`` (default distance: the first)."""
        distance = distance or self.distances[0]
        self._check(layer, distance)
        return self.f[f"stimulus/{distance}/{layer_key(layer)}"][()]

    def stimulus_rdm_subset(
        self, layer: str, distance: str | None, rows: Sequence[int] | np.ndarray
    ) -> np.ndarray:
        """The condensed RDM of the stimuli at ``rows`` (strictly increasing positions in
        ``stimulus_ids``), read row by row: a few hundred rows of a large RDM cost a few
        hundred short reads, not the whole vector."""
        distance = distance or self.distances[0]
        self._check(layer, distance)
        dset = self.f[f"stimulus/{distance}/{layer_key(layer)}"]
        n = n_from_pairs(dset.shape[0])
        keep = np.asarray(rows, dtype=np.int64)
        if len(keep) and (keep[0] < 0 or keep[-1] >= n or (np.diff(keep) <= 0).any()):
            raise ValueError(f"{self.path}: rows must increase strictly within 0..{n - 1}")
        if len(keep) == n:
            return dset[()]
        offsets = row_offsets(n)
        parts = []
        for k, a in enumerate(keep[:-1]):
            start = int(offsets[a])
            row = dset[start : start + n - a - 1]  # d(a, a+1) ... d(a, n-1)
            parts.append(row[keep[k + 1 :] - a - 1])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def stimulus_rdm_attrs(self, layer: str, distance: str | None = None) -> dict[str, Any]:
        distance = distance or self.distances[0]
        self._check(layer, distance)
        dset = self.f[f"stimulus/{distance}/{layer_key(layer)}"]
        return {k: _decode(v) for k, v in dset.attrs.items()}

    @property
    def condition_labels(self) -> list[str]:
        if "labels" not in self.f:
            return []
        return [str(_decode(self.f[f"labels/{k}"].attrs["label"])) for k in self.f["labels"]]

    def conditions(self, label: str) -> tuple[list[str], np.ndarray]:
        """``(values, counts)`` of a label's conditions."""
        if label not in self.condition_labels:
            raise NotFound(no_such("label", label, self.condition_labels, str(self.path)))
        group = self.f[f"labels/{layer_key(label)}"]
        return _read_strings(group["values"]), group["counts"][()]

    def condition_rdm(self, label: str, layer: str, distance: str | None = None) -> np.ndarray:
        """The condensed RDM over the conditions (values) of ``label``."""
        distance = distance or self.distances[0]
        self._check(layer, distance)
        self.conditions(label)
        return self.f[f"labels/{layer_key(label)}/{distance}/{layer_key(layer)}"][()]


# --------------------------------------------------------------------------- compare.h5


@dataclass
class LayerTable:
    """The rows/columns of the comparison matrices: one per (model, layer)."""

    model: list[str]
    layer: list[str]
    index: list[int]
    depth: list[float]
    feature_dim: list[int]

    def __len__(self) -> int:
        return len(self.model)

    def labels(self) -> list[str]:
        return [f"{m}/{lay}" for m, lay in zip(self.model, self.layer, strict=True)]

    def of_model(self, model: str) -> list[int]:
        return [i for i, m in enumerate(self.model) if m == model]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.model))


@dataclass
class Comparison:
    """Everything ``compare.h5`` holds, in memory."""

    layers: LayerTable
    cka: np.ndarray | None
    cka_estimator: list[str]
    rsa: dict[str, dict[str, np.ndarray]]
    theory: dict[str, dict[str, dict[str, np.ndarray]]]
    theories: dict[str, dict[str, Any]]
    rsa_stimulus_ids: list[str]
    attrs: dict[str, Any]


def write_comparison(path: PathLike, comparison: Comparison) -> Path:
    """Write ``compare.h5`` atomically."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = COMPARE_KIND
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["producer"] = f"actpipe {__version__}"
        for key, value in comparison.attrs.items():
            f.attrs[key] = _attr(value)
        t = comparison.layers
        g = f.create_group("layers")
        g.create_dataset("model", data=_strings(t.model), dtype=STR)
        g.create_dataset("layer", data=_strings(t.layer), dtype=STR)
        g.create_dataset("index", data=np.asarray(t.index, dtype=np.int64))
        g.create_dataset("depth", data=np.asarray(t.depth, dtype=np.float64))
        g.create_dataset("feature_dim", data=np.asarray(t.feature_dim, dtype=np.int64))
        if comparison.cka is not None:
            c = f.create_group("cka")
            c.create_dataset("matrix", data=comparison.cka)
            c.create_dataset("estimator", data=_strings(comparison.cka_estimator), dtype=STR)
        for distance, methods in comparison.rsa.items():
            for method, matrix in methods.items():
                f.create_dataset(f"rsa/{distance}/{method}", data=matrix)
        for label, by_distance in comparison.theory.items():
            g = f.require_group(f"theory/{layer_key(label)}")
            g.attrs["label"] = label
            for key, value in comparison.theories.get(label, {}).items():
                g.attrs[key] = _attr(value)
            for distance, methods in by_distance.items():
                for method, values in methods.items():
                    g.create_dataset(f"{distance}/{method}", data=values)
        f.create_dataset("rsa_stimulus_ids", data=_strings(comparison.rsa_stimulus_ids), dtype=STR)
    return Path(path)


def read_comparison(path: PathLike) -> Comparison:
    """Read a ``compare.h5`` written by :func:`write_comparison`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such comparison file")
    with h5py.File(path, "r") as f:
        _check_kind(f, path, COMPARE_KIND)
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
        g = f["layers"]
        table = LayerTable(
            _read_strings(g["model"]),
            _read_strings(g["layer"]),
            g["index"][()].tolist(),
            g["depth"][()].tolist(),
            g["feature_dim"][()].tolist(),
        )
        cka = f["cka/matrix"][()] if "cka" in f else None
        estimator = _read_strings(f["cka/estimator"]) if "cka" in f else []
        rsa = {d: {m: f[f"rsa/{d}/{m}"][()] for m in f[f"rsa/{d}"]} for d in f.get("rsa", {})}
        theory: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        theories: dict[str, dict[str, Any]] = {}
        for key in f.get("theory", {}):
            group = f[f"theory/{key}"]
            label = str(_decode(group.attrs["label"]))
            theories[label] = {k: _decode(v) for k, v in group.attrs.items() if k != "label"}
            theory[label] = {d: {m: group[f"{d}/{m}"][()] for m in group[d]} for d in group}
        ids = _read_strings(f["rsa_stimulus_ids"])
    return Comparison(table, cka, estimator, rsa, theory, theories, ids, attrs)


def tsv_rows(comparison: Comparison) -> Iterator[dict[str, Any]]:
    """The long-format rows of ``compare.tsv`` (pairs ``a < b``, then theory rows)."""
    t = comparison.layers
    n_rsa = len(comparison.rsa_stimulus_ids)
    n_cka = comparison.attrs.get("n_cka_stimuli", "")
    for a in range(len(t)):
        for b in range(a + 1, len(t)):
            base = {
                "kind": "layers",
                "model_a": t.model[a],
                "layer_a": t.layer[a],
                "model_b": t.model[b],
                "layer_b": t.layer[b],
                "label": "",
            }
            if comparison.cka is not None:
                exact = comparison.cka_estimator[a] == comparison.cka_estimator[b] == "exact"
                estimator = (
                    "exact"
                    if exact
                    else "+".join(
                        sorted({comparison.cka_estimator[a], comparison.cka_estimator[b]})
                    )
                )
                yield {
                    **base,
                    "measure": "cka",
                    "distance": "",
                    "value": comparison.cka[a, b],
                    "n_stimuli": n_cka,
                    "estimator": estimator,
                }
            for distance, methods in comparison.rsa.items():
                for method, matrix in methods.items():
                    yield {
                        **base,
                        "measure": method,
                        "distance": distance,
                        "value": matrix[a, b],
                        "n_stimuli": n_rsa,
                        "estimator": "exact",
                    }
    for label, by_distance in comparison.theory.items():
        for distance, methods in by_distance.items():
            for method, values in methods.items():
                for a in range(len(t)):
                    yield {
                        "kind": "theory",
                        "model_a": t.model[a],
                        "layer_a": t.layer[a],
                        "model_b": "",
                        "layer_b": "",
                        "label": label,
                        "measure": method,
                        "distance": distance,
                        "value": values[a],
                        "n_stimuli": n_rsa,
                        "estimator": "exact",
                    }


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else repr(float(value))
    return str(value)


def write_tsv(path: PathLike, comparison: Comparison) -> Path:
    """Write ``compare.tsv`` (tab-separated, one comparison per line) atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, TSV_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in tsv_rows(comparison):
            writer.writerow({k: _format(v) for k, v in row.items()})
    return Path(path)


# --------------------------------------------------------------------------- rsatoolbox


def export_rsatoolbox(
    rdm_path: PathLike,
    output: PathLike,
    distance: str | None = None,
    label: str | None = None,
    layers: Sequence[str] | None = None,
) -> Path:
    """Write RDMs of an ``rdms.h5`` as a file ``rsatoolbox.rdm.load_rdm`` reads.

    One RDMs object: the stimulus RDMs (or, with ``label``, the condition RDMs of that label)
    of every layer (or of ``layers``) for one ``distance`` (default: the first), stacked as
    ``dissimilarities`` (n_layers x pairs) with ``rdm_descriptors`` ``model``, ``layer`` and
    ``distance`` and ``pattern_descriptors`` ``stimulus_id`` plus every label column (or the
    label's ``value`` and ``count``). Distances rsatoolbox has no name for keep ours as
    ``dissimilarity_measure``. Needs no rsatoolbox installed; the layout is its
    ``write_dict_hdf5`` of ``RDMs.to_dict()``.
    """
    with RDMFile(rdm_path) as rdms:
        distance = distance or rdms.distances[0]
        chosen = list(layers) if layers else rdms.layers
        if label is None:
            vectors = np.stack([rdms.stimulus_rdm(layer, distance) for layer in chosen])
            labels = rdms.labels
            patterns: dict[str, np.ndarray] = {"stimulus_id": _strings(labels.stimulus_ids)}
            for name, values in labels.columns.items():
                if name not in patterns:
                    patterns[name] = _strings(values)
        else:
            values, counts = rdms.conditions(label)
            vectors = np.stack([rdms.condition_rdm(label, layer, distance) for layer in chosen])
            patterns = {"value": _strings(values), "count": np.asarray(counts, dtype=np.int64)}
        model = rdms.model

    def ascii_bytes(array: np.ndarray) -> np.ndarray:
        text = [str(v) for v in array.tolist()]
        return np.array([v if v.isascii() else layer_key(v) for v in text], dtype="S")

    measure = RSATOOLBOX_NAMES.get(distance, (distance, distance))[1]
    n = n_from_pairs(vectors.shape[1])
    patterns["index"] = np.arange(n)
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["rsatoolbox_version"] = "0.3.2"
        f.attrs["dissimilarity_measure"] = measure
        f.create_dataset("dissimilarities", data=vectors)
        desc = f.create_group("descriptors")
        desc.create_dataset("source", data=np.array([str(rdm_path)], dtype="S"))
        rdesc = f.create_group("rdm_descriptors")
        for key, values in (
            ("model", [model] * len(chosen)),
            ("layer", list(chosen)),
            ("distance", [distance] * len(chosen)),
            ("index", list(range(len(chosen)))),
        ):
            array = np.asarray(values)
            rdesc.create_dataset(
                key, data=ascii_bytes(array) if array.dtype.kind in "UO" else array
            )
        pdesc = f.create_group("pattern_descriptors")
        for key, array in patterns.items():
            array = np.asarray(array)
            pdesc.create_dataset(
                key, data=ascii_bytes(array) if array.dtype.kind in "UO" else array
            )
    return Path(output)
