"""Stimulus folders as people keep them: class subfolders, labels, hidden files, extensions,
and the parse-time listing of the workflow agreeing with the library's."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from actpipe.imagefiles import list_image_files, listing_digest
from actpipe.stimuli import StimulusError, load_stimulus_folder
from actpipe.stimuli.labels import label_columns
from tests.helpers.images import photo
from tests.helpers.workflow import run_snakemake, tiny_config, write_config


def image(path: Path, seed: int = 0, size=(12, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(*size, seed=seed)).save(path)
    return path


def image_folder_tree(root: Path) -> Path:
    """An ImageFolder layout with the usual clutter: hidden files and folders, notes,
    mixed-case extensions, a nested folder, a file at the root."""
    image(root / "cats" / "001.jpg", 1)
    image(root / "cats" / "002.JPG", 2)
    image(root / "cats" / "fluffy" / "003.png", 3)  # deeper: folder label is still 'cats'
    image(root / "dogs" / "001.jpeg", 4)
    image(root / "dogs" / "a.b.png", 5)
    image(root / "top.png", 6)
    image(root / ".thumbs" / "cats_001.jpg", 7)  # hidden folder
    image(root / "dogs" / "._001.jpeg", 8)  # macOS resource fork
    (root / "dogs" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "cats" / "notes.txt").write_text("good cats")
    (root / "empty").mkdir()
    return root


EXPECTED_IDS = ["cats/001", "cats/002", "cats/fluffy/003", "dogs/001", "dogs/a.b", "top"]


def test_recursive_folder_ids_and_folder_label(tmp_path):
    root = image_folder_tree(tmp_path / "stim")
    stimuli = load_stimulus_folder(root, {"recursive": True})
    assert stimuli.ids == EXPECTED_IDS
    assert [p.relative_to(root).as_posix() for p in stimuli.paths] == [
        "cats/001.jpg",
        "cats/002.JPG",
        "cats/fluffy/003.png",
        "dogs/001.jpeg",
        "dogs/a.b.png",
        "top.png",
    ]
    assert stimuli.labels == {"folder": ["cats", "cats", "cats", "dogs", "dogs", ""]}


def test_labels_csv_is_merged_with_the_folder_label(tmp_path):
    root = image_folder_tree(tmp_path / "stim")
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "size"])
        for sid, size in zip(EXPECTED_IDS, ["s", "l", "s", "l", "s", "l"], strict=True):
            writer.writerow([sid, size])
    stimuli = load_stimulus_folder(root, {"recursive": True})
    assert list(stimuli.labels) == ["folder", "size"]
    assert stimuli.labels["size"] == ["s", "l", "s", "l", "s", "l"]
    assert stimuli.labels["folder"][:4] == ["cats", "cats", "cats", "dogs"]


def test_a_folder_column_of_labels_csv_wins_with_a_warning(tmp_path, caplog):
    root = image_folder_tree(tmp_path / "stim")
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "folder"])
        for sid in EXPECTED_IDS:
            writer.writerow([sid, "pets" if sid.startswith("cats") else sid.partition("/")[0]])
    with caplog.at_level(logging.WARNING):
        stimuli = load_stimulus_folder(root, {"recursive": True})
    assert stimuli.labels == {"folder": ["pets", "pets", "pets", "dogs", "dogs", "top"]}
    assert "differs from the subfolder of 4 stimulus id(s)" in caplog.text


def test_labels_csv_missing_a_nested_id_says_what_ids_look_like(tmp_path):
    root = image_folder_tree(tmp_path / "stim")
    (root / "labels.csv").write_text("stimulus_id,size\n001,s\n")
    with pytest.raises(StimulusError, match=r"no row for 6 stimulus id.*'cats/001'"):
        load_stimulus_folder(root, {"recursive": True})


def test_without_recursive_subfolders_with_images_are_named(tmp_path, caplog):
    root = image_folder_tree(tmp_path / "stim")
    with caplog.at_level(logging.WARNING):
        stimuli = load_stimulus_folder(root)
    assert stimuli.ids == ["top"] and stimuli.labels == {}
    assert "2 subfolder(s) hold images that are not used (cats, dogs)" in caplog.text
    assert "recursive: true" in caplog.text
    (root / "top.png").unlink()
    with pytest.raises(StimulusError, match=r"holds no images.*'cats', 'dogs'.*recursive: true"):
        load_stimulus_folder(root)


def test_ambiguous_ids_are_all_named(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "a.jpg")
    image(tmp_path / "cats" / "x.png")
    image(tmp_path / "cats" / "x.TIF")
    image(tmp_path / "cats" / "y.png")
    load_stimulus_folder(tmp_path / "cats" / "..", {"extensions": ["png"], "recursive": True})
    with pytest.raises(StimulusError, match=r"2 stimulus id\(s\) are ambiguous.*a\.jpg and a\.png"):
        load_stimulus_folder(tmp_path, {"recursive": True})
    with pytest.raises(StimulusError, match=r"cats/x\.TIF and cats/x\.png|cats/x\.png and cats/x"):
        load_stimulus_folder(tmp_path, {"recursive": True})


def test_symlinked_class_folders_are_followed_once(tmp_path):
    data = tmp_path / "data"
    image(data / "cats" / "1.png")
    root = tmp_path / "stim"
    root.mkdir()
    os.symlink(data / "cats", root / "cats")
    os.symlink(root, root / "cats_again_loop", target_is_directory=True)  # a cycle
    os.symlink(tmp_path / "gone.png", root / "dangling.png")
    files = list_image_files(root, recursive=True)
    ids = [f.stimulus_id for f in files]
    assert "cats/1" in ids and "dangling" in ids
    assert [f.size for f in files if f.stimulus_id == "dangling"] == [-1]


def test_listing_digest_sees_changes_in_subfolders(tmp_path):
    root = image_folder_tree(tmp_path / "stim")
    before = listing_digest(list_image_files(root, recursive=True))
    mtime = (root).stat().st_mtime_ns
    image(root / "dogs" / "002.png", 9)
    assert root.stat().st_mtime_ns == mtime  # the root folder itself did not change ...
    assert listing_digest(list_image_files(root, recursive=True)) != before  # ... the digest did


def test_ids_with_slashes_go_through_extraction_and_reading(tmp_path):
    from actpipe import load_lazy_activations
    from actpipe.extraction import ExtractionOptions, extract_activations
    from actpipe.models import ModelSpec

    root = image_folder_tree(tmp_path / "stim")
    stimuli = load_stimulus_folder(root, {"recursive": True})
    spec = ModelSpec.from_config(
        "tiny",
        {
            "source": "torchvision",
            "name": "resnet18",
            "layers": ["layer1"],
            "reduce": "mean",
            "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
            "batch_size": 4,
        },
    )
    out = extract_activations(
        spec, stimuli, tmp_path / "o.h5", ExtractionOptions.from_config({"progress": False})
    )
    with h5py.File(out, "r") as f:
        assert [s.decode() for s in f["tiny/stimulus_ids"][()]] == EXPECTED_IDS
        assert list(f["tiny/layers"]) == ["layer1"]
        assert json.loads(f["tiny"].attrs["stimulus_options"])["recursive"] is True
        whole = f["tiny/layers/layer1"][()]
    with load_lazy_activations(out) as acts:
        np.testing.assert_array_equal(acts["tiny"]["cats/fluffy/003"]["layer1"], whole[2])
    assert label_columns(root, EXPECTED_IDS)["folder"][2] == "cats"


# ------------------------------------------------------------------ the workflow


def _folder_config(path: Path, **block) -> dict:
    config = tiny_config()
    config["stimuli"] = {"photos": {"source": "folder", "path": str(path), **block}}
    config["models"] = {"resnet18": config["models"]["resnet18"]}
    config["models"]["resnet18"]["layers"] = ["layer1", "layer3"]
    config["models"]["resnet18"]["batch_size"] = 4
    return config


def _planned(out: str, rule: str) -> int:
    """How many jobs of ``rule`` a ``snakemake -n`` summary plans."""
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == rule and parts[1].isdigit():
            return int(parts[1])
    return 0


@pytest.mark.workflow
def test_parse_time_count_agrees_with_the_library_on_an_awkward_tree(tmp_path):
    root = image_folder_tree(tmp_path / "stim")
    for i in range(5):
        image(root / "birds" / f"{i:03d}.WEBP", 10 + i)
    n = len(load_stimulus_folder(root, {"recursive": True}))
    assert n == len(EXPECTED_IDS) + 5
    write_config(tmp_path, _folder_config(root, recursive=True, shard_size=3))
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert _planned(out, "extract_activations_shard") == -(-n // 3)
    write_config(tmp_path, _folder_config(root, shard_size=3))  # not recursive: only top.png
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert _planned(out, "extract_activations_shard") == 1
    (root / "top.png").unlink()  # nothing left directly inside: refused when planning
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "stimuli.photos: stimulus folder" in said and "recursive: true" in said


@pytest.mark.workflow
def test_workflow_on_class_subfolders_of_jpegs(tmp_path):
    root = tmp_path / "photos"
    for c, name in enumerate(["cats", "dogs", "owls"]):
        for i in range(4):
            size = (30 + 7 * i, 41 + 3 * c)  # odd, non-square sizes
            image(root / name / f"{i:03d}.jpg", seed=10 * c + i, size=size)
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "parity"])
        for name in ["cats", "dogs", "owls"]:
            for i in range(4):
                writer.writerow([f"{name}/{i:03d}", i % 2])
    write_config(tmp_path, _folder_config(root, recursive=True))
    run_snakemake(tmp_path, "--cores", "2")
    with h5py.File(tmp_path / "results/activations/photos/resnet18.h5", "r") as f:
        ids = [s.decode() for s in f["resnet18/stimulus_ids"][()]]
    assert ids == [f"{n}/{i:03d}" for n in ["cats", "dogs", "owls"] for i in range(4)]
    folder = tmp_path / "results/clusters/photos/resnet18/kmeans_k3"
    with open(folder / "quality.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {"ari_folder", "ari_parity"} <= set(rows[0])
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["label_columns"] == ["folder", "parity"]
    paths = json.loads((folder / "paths.json").read_text())
    assert set(paths["paths"]) == set(ids)
    # Nothing to do; then a photo added in a subfolder (the root folder's mtime unchanged)
    # reruns extraction, and a labels.csv edited in place reruns only the clustering.
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert _planned(out, "extract_activations") == 0 and _planned(out, "cluster_paths") == 0
    image(root / "owls" / "004.jpg", seed=99, size=(33, 35))
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert _planned(out, "extract_activations") == 1
    (root / "owls" / "004.jpg").unlink()
    with open(root / "labels.csv", "a", newline="") as fh:
        fh.write("unused/999,1\n")
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert _planned(out, "extract_activations") == 0
    assert _planned(out, "cluster_paths") == 1


def test_schema_defaults_are_the_library_defaults():
    import yaml

    from actpipe.imagefiles import DEFAULT_EXTENSIONS, DEFAULT_MAX_IMAGE_PIXELS
    from actpipe.stimuli import FolderOptions
    from actpipe.stimuli.folder import FOLDER_KEYS
    from tests.helpers.workflow import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    keys = schema["$defs"]["folder_set"]["properties"]
    assert keys["extensions"]["default"] == list(DEFAULT_EXTENSIONS)
    assert keys["max_image_pixels"]["default"] == DEFAULT_MAX_IMAGE_PIXELS
    assert keys["recursive"]["default"] is False
    assert set(FOLDER_KEYS) <= set(keys)
    assert FolderOptions.from_config({}) == FolderOptions()
    assert FolderOptions().max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS
    with pytest.raises(StimulusError, match="max_image_pixels"):
        FolderOptions.from_config({"max_image_pixels": 0})
    with pytest.raises(StimulusError, match="extensions"):
        FolderOptions.from_config({"extensions": []})


def test_thumbnails_and_similarity_labels_follow_the_folder_options(tmp_path):
    from actpipe.similarity.labels import StimulusLabels
    from actpipe.site.thumbnails import ThumbnailOptions, make_thumbnails, thumbnail_name
    from tests.helpers.images import with_orientation

    root = image_folder_tree(tmp_path / "stim")
    upright = photo(20, 40, seed=3)  # wide
    with_orientation(root / "dogs" / "phone.jpg", upright, 6, quality=95)  # stored tall
    stimuli = load_stimulus_folder(root, {"recursive": True})
    manifest = make_thumbnails(
        root,
        tmp_path / "thumbs",
        ThumbnailOptions(size=32, format="jpeg"),
        stimulus_options={"recursive": True},
    )
    assert manifest["ids"] == stimuli.ids
    assert manifest["labels"]["folder"] == stimuli.labels["folder"]
    phone = stimuli.ids.index("dogs/phone")
    with Image.open(tmp_path / "thumbs" / thumbnail_name(phone, "jpg")) as thumb:
        assert thumb.size == (32, 16)  # upright, as the models saw it
    labels = StimulusLabels.read(root, stimuli.ids)
    assert labels.names == ["folder"] and labels.columns["folder"] == stimuli.labels["folder"]
