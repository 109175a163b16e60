"""Small activation files for the reading, conversion and append tests (no model run)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from actpipe.storage import ActivationWriter, StorageOptions

PROVENANCE = {
    "model": {"name": "tiny", "source": "test"},
    "stimulus_set": "unit",
    "weights": {"kind": "random", "seed": 0},
    "preprocess": {"size": 8},
    "jitter": {"translate": 1},
    "seed": 0,
    "versions": {"numpy": np.__version__},
}


def random_model(
    n: int, n_rep: int, dims: dict[str, int], seed: int = 0, dtype=np.float32
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Ids (deliberately not in sorted order), layer arrays and jitter of a made-up model."""
    rng = np.random.default_rng(seed)
    ids = [f"stim_{k:03d}" for k in rng.permutation(n)]
    layers = {name: rng.standard_normal((n, n_rep, d)).astype(dtype) for name, d in dims.items()}
    jitter = rng.uniform(-2, 2, (n, n_rep, 4))
    return ids, layers, jitter


def write_model_file(
    path: Path,
    model: str,
    ids: list[str],
    layers: dict[str, np.ndarray],
    jitter: np.ndarray | None = None,
    options: StorageOptions | None = None,
    attrs: dict | None = None,
) -> Path:
    """A per-model file written by the real writer, in a few row batches."""
    n, n_rep = len(ids), next(iter(layers.values())).shape[1]
    if jitter is None:
        jitter = np.zeros((n, n_rep, 4))
    with ActivationWriter(path, model, n, n_rep, options) as writer:
        for name, values in layers.items():
            writer.add_layer(
                name,
                values.shape[2],
                (values.shape[2],),
                {"reduce": "none", "reduce_applied": "none", "name": name},
            )
        for start in range(0, n, 3):
            writer.write_rows(
                start,
                jitter[start : start + 3],
                {name: v[start : start + 3] for name, v in layers.items()},
            )
        return writer.finish(ids, dict(PROVENANCE if attrs is None else attrs))


def write_old_layout(path: Path, data: dict[str, dict[str, dict[str, np.ndarray]]]) -> Path:
    """A file as the older pipeline wrote it: /{model}/{stimulus_id}/{layer}, no attributes,
    each dataset (n_replicates, feature_dim)."""
    with h5py.File(path, "w") as f:
        for model, stimuli in data.items():
            group = f.create_group(model)
            for sid, layers in stimuli.items():
                stimulus = group.create_group(sid)
                for layer, values in layers.items():
                    stimulus.create_dataset(layer, data=values)
    return path


def old_layout_data(seed: int = 0) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Two models with the older tools' names, 4 replicates, different layers and widths."""
    rng = np.random.default_rng(seed)
    spec = {
        "ResNet50": {"layer1.0.conv1": 64, "layer4.2.conv3": 32},
        "ViT-B-16": {"blocks.5.attn": 48},
    }
    return {
        model: {
            f"object_{i:02d}": {
                layer: rng.standard_normal((4, d)).astype(np.float32) for layer, d in layers.items()
            }
            for i in range(1, 6)
        }
        for model, layers in spec.items()
    }
