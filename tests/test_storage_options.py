"""The config's storage block reaches the writer: compression, float16, chunk size."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec
from actpipe.storage import StorageOptions
from actpipe.storage.format import chunk_shape
from tests.helpers.files import random_model, write_model_file

SIZE = 32
MODEL = {
    "source": "torchvision",
    "name": "resnet18",
    "weights": "random",
    "seed": 1,
    "layers": ["layer1", {"name": "layer3", "reduce": "mean"}],
    "preprocess": {"preset": "imagenet", "size": SIZE, "resize": SIZE},
    "batch_size": 4,
}
EXTRACTION = {"n_replicates": 2, "seed": 0, "progress": False, "jitter": {"translate": 2}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One extraction per storage block, through the rule's entry point."""
    from actpipe.stimuli import materialise_stimuli

    root = tmp_path_factory.mktemp("storage")
    materialise_stimuli(
        {
            "source": "gratings",
            "size": SIZE,
            "orientations": 3,
            "phases": 2,
            "spatial_frequencies": [2],
        },
        root / "stimuli",
    )
    blocks = {
        "none": {},
        "lzf": {"compression": "lzf"},
        "gzip": {"compression": "gzip", "compression_level": 6, "chunk_bytes": 65536},
        "half": {"dtype": "float16", "compression": "gzip"},
    }
    out = {}
    for name, storage in blocks.items():
        out[name] = root / f"{name}.h5"
        extract_activations(
            ModelSpec.from_config("resnet18", MODEL),
            root / "stimuli",
            out[name],
            ExtractionOptions.from_config(EXTRACTION, storage),
            stimulus_set="g",
            threads=1,
        )
    return out


def read(path, layer):
    with h5py.File(path, "r") as f:
        d = f[f"resnet18/layers/{layer}"]
        return d[()], d.dtype, d.compression, d.compression_opts, d.chunks


@pytest.mark.parametrize("name", ["lzf", "gzip"])
def test_compressed_values_read_back_identical(runs, name):
    for layer in ("layer1", "layer3"):
        ref, *_ = read(runs["none"], layer)
        values, dtype, compression, level, _ = read(runs[name], layer)
        assert dtype == np.float32 and compression == name
        assert level == (6 if name == "gzip" else None)
        np.testing.assert_array_equal(values, ref)
    _, _, compression, _, _ = read(runs["none"], "layer1")
    assert compression is None
    with h5py.File(runs[name], "r") as f:
        assert f["resnet18"].attrs["storage"].startswith('{"dtype": "float32", "compression"')


def test_float16_storage_is_float32_rounded(runs):
    for layer in ("layer1", "layer3"):
        ref, *_ = read(runs["none"], layer)
        values, dtype, compression, _, _ = read(runs["half"], layer)
        assert dtype == np.float16 and compression == "gzip"
        np.testing.assert_array_equal(values, ref.astype(np.float16))
        np.testing.assert_allclose(values.astype(np.float32), ref, rtol=2**-10, atol=2**-24)


def test_chunks_hold_whole_rows_of_the_configured_size(runs):
    ref, _, _, _, chunks = read(runs["none"], "layer1")
    n, n_rep, dim = ref.shape  # 6 stimuli, 2 replicates, 64*8*8 features: 32 KiB a row
    assert chunks == (n, n_rep, dim)  # the whole layer is under 1 MiB
    _, _, _, _, chunks = read(runs["gzip"], "layer1")
    assert chunks == (2, n_rep, dim)  # 65536 bytes: two rows


def test_default_chunks_are_about_one_mebibyte(tmp_path):
    files = {
        "c.h5": random_model(100, 2, {"wide": 4096, "narrow": 10})[:2],
        "h.h5": random_model(3, 2, {"huge": 150_000})[:2],  # 1.2 MB a row
    }
    for file, (ids, layers) in files.items():
        path = write_model_file(tmp_path / file, "m", ids, layers)
        with h5py.File(path, "r") as f:
            for name, values in layers.items():
                dset = f[f"m/layers/{name}"]
                chunk_bytes = np.prod(dset.chunks) * dset.dtype.itemsize
                row_bytes = 2 * values.shape[2] * 4
                assert chunk_bytes <= 1 << 20
                if row_bytes <= 1 << 20:
                    assert dset.chunks[1:] == dset.shape[1:]  # whole rows
                    assert dset.chunks[0] == min(100, (1 << 20) // row_bytes)
                else:  # one row is over 1 MiB: cut into the fewest pieces of at most 1 MiB
                    assert dset.chunks[:2] == (1, 2)
                    pieces = -(-values.shape[2] // dset.chunks[2])
                    assert pieces == -(-row_bytes // (1 << 20))
                np.testing.assert_array_equal(dset[()], values)
    assert chunk_shape(100, 2, 4096, 4) == (32, 2, 4096)
    assert StorageOptions().chunk_bytes == 1 << 20
    with pytest.raises(ValueError, match="storage.compression 'zstd'"):
        StorageOptions.from_config({"compression": "zstd"})


def test_extracted_files_validate_and_read_through_the_api(runs, tmp_path):
    from actpipe import load_lazy_activations, read_layer
    from actpipe.storage import join_activations
    from actpipe.storage.validate import validate_file

    for path in runs.values():
        assert validate_file(path) == []
    joined = join_activations(tmp_path / "set.h5", {"resnet18": runs["half"]})
    assert validate_file(joined) == []
    raw, *_ = read(runs["half"], "layer3")
    mean = read_layer(joined, "resnet18", "layer3", replicate_mean=True, dtype=np.float64)
    np.testing.assert_allclose(mean, raw.astype(np.float64).mean(axis=1), rtol=0, atol=1e-12)
    with load_lazy_activations(joined) as acts:
        sid = acts["resnet18"].stimulus_ids[4]
        np.testing.assert_array_equal(
            acts["resnet18"][sid]["layer1"], read(runs["half"], "layer1")[0][4]
        )
        assert acts["resnet18"].attrs["storage"]["dtype"] == "float16"
