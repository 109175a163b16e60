"""Extraction of one model on one stimulus set into one per-model HDF5 file.

Image loading runs one batch ahead in a background thread and HDF5 writing one batch
behind in another, so the forward pass (which releases the GIL) is rarely kept waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FolderChangedError, StimulusError
from ..models.spec import AUTOCAST, ModelSpec
from ..preprocess import Jitter, expose, image_tensor
from ..stimuli import StimulusSet, decode_image, find_unreadable, load_stimulus_folder
from ..storage import ActivationWriter, StorageOptions
from .backends import open_backend
from .runtime import set_deterministic, tune_malloc

log = logging.getLogger(__name__)

ON_BAD_IMAGE = ("error", "skip")


@dataclass(frozen=True)
class ExtractionOptions:
    """Settings shared by every model of a run (the config's ``extraction:`` block)."""

    n_replicates: int = 1
    jitter: Jitter = field(default_factory=Jitter)
    seed: int = 0
    device: str = "auto"
    on_bad_image: str = "error"
    storage: StorageOptions = field(default_factory=StorageOptions)
    tune_malloc: bool = True
    channels_last: bool = False
    autocast: str = "none"
    progress: bool = True
    checkpoint_seconds: float = 60.0
    resume: bool = True

    @classmethod
    def from_config(
        cls, block: dict[str, Any], storage: dict[str, Any] | None = None
    ) -> ExtractionOptions:
        block = dict(block or {})
        seed = int(block.get("seed", 0))
        options = cls(
            n_replicates=int(block.get("n_replicates", 1)),
            jitter=Jitter.from_config(block.get("jitter"), seed),
            seed=seed,
            device=str(block.get("device", "auto")),
            on_bad_image=str(block.get("on_bad_image", "error")),
            storage=StorageOptions.from_config(storage),
            tune_malloc=bool(block.get("tune_malloc", True)),
            channels_last=bool(block.get("channels_last", False)),
            autocast=str(block.get("autocast", "none")),
            progress=bool(block.get("progress", True)),
            checkpoint_seconds=float(block.get("checkpoint_seconds", 60.0)),
            resume=bool(block.get("resume", True)),
        )
        if options.n_replicates < 1:
            raise ValueError(f"extraction.n_replicates must be >= 1, got {options.n_replicates}")
        if options.on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"extraction.on_bad_image must be one of {ON_BAD_IMAGE}")
        if options.autocast not in AUTOCAST:
            raise ValueError(f"extraction.autocast must be one of {AUTOCAST}")
        return options


@dataclass
class Batch:
    """Inputs for one forward pass: ``n_images * n_replicates`` exposures, image-major."""

    ids: list[str]
    inputs: torch.Tensor
    jitter: np.ndarray
    skipped: list[str]
    stop: int


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("actpipe", "torch", "torchvision", "timm", "numpy", "h5py", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def images_per_batch(spec: ModelSpec, options: ExtractionOptions) -> int:
    return max(1, spec.batch_size // options.n_replicates)


def iter_batches(
    stimuli: StimulusSet,
    spec: ModelSpec,
    options: ExtractionOptions,
    pin: bool,
    start_image: int = 0,
) -> Iterator[Batch]:
    """Batches of prepared, jittered, normalised exposures, in stimulus order.

    Batch boundaries are fixed multiples of :func:`images_per_batch` from the first image,
    so a run resumed at a boundary computes exactly the batches of an uninterrupted run.
    """
    per_batch = images_per_batch(spec, options)
    pre = spec.preprocess
    limit = stimuli.options.max_image_pixels
    for start in range(start_image, len(stimuli), per_batch):
        ids, tensors, records, skipped = [], [], [], []
        for index in range(start, min(start + per_batch, len(stimuli))):
            sid, path = stimuli.ids[index], stimuli.paths[index]
            try:
                decoded = decode_image(path, pre.background, limit, stimuli.listed(index))
                image = image_tensor(decoded, pre)
            except FolderChangedError:
                raise
            except StimulusError as exc:
                if options.on_bad_image == "skip":
                    log.warning("skipping stimulus %r: %s", sid, exc)
                    skipped.append(sid)
                    continue
                raise
            exposures, record = expose(image, sid, options.n_replicates, options.jitter, pre)
            ids.append(sid)
            tensors.append(exposures)
            records.append(record)
        if ids:
            inputs = torch.cat(tensors)
            if pin:
                inputs = inputs.pin_memory()
            yield Batch(ids, inputs, np.stack(records), skipped, start + per_batch)
        elif skipped:
            yield Batch(
                [],
                torch.empty(0),
                np.zeros((0, options.n_replicates, 4)),
                skipped,
                start + per_batch,
            )


def resume_key(
    spec: ModelSpec,
    stimuli: StimulusSet,
    options: ExtractionOptions,
    weights_sha256: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """What must be equal for a partial file to be continued instead of started over.

    ``extra``: what else a pass's output depends on (the gradient pass's target and store).
    """
    from .._version import __version__

    description = {
        "weights_sha256": weights_sha256,
        "autocast": options.autocast,
        "model": spec.describe(),
        "preprocess": spec.preprocess.to_dict(),
        "n_replicates": options.n_replicates,
        "jitter": options.jitter.to_dict(),
        "seed": options.seed,
        "storage": options.storage.to_dict(),
        "on_bad_image": options.on_bad_image,
        "channels_last": options.channels_last,
        "ids": stimuli.ids,
        "stimulus_options": stimuli.options.to_dict(),
        "actpipe": __version__,
    }
    if extra is not None:
        description["extra"] = extra
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def check_images(stimuli: StimulusSet, workers: int | None = None) -> None:
    """Check every image of ``stimuli`` before any model is built; raise listing all problems.

    The check (:func:`actpipe.stimuli.check_image`) reads headers and proves each file
    decodes (PNG chunk checksums, JPEG at 1/8 scale, other formats' first frame), refuses
    images over the set's ``max_image_pixels``, and runs in ``workers`` threads.
    """
    import time

    began = time.perf_counter()
    problems = find_unreadable(
        stimuli.paths, stimuli.options.max_image_pixels, workers, stimuli.files
    )
    seconds = time.perf_counter() - began
    if problems:
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise StimulusError(
            f"{len(problems)} of {len(stimuli)} image(s) in {stimuli.root} cannot be used; "
            "nothing was extracted. Fix or remove them, or set extraction.on_bad_image: skip "
            "to leave them out (their ids are then recorded in the file):\n  "
            + "\n  ".join(shown)
            + more
        )
    log.info("checked %d images in %.2f s: all can be decoded", len(stimuli), seconds)


Rows = dict[str, np.ndarray]
"""One batch's values: ``{name: (n_images, n_replicates, ...)}``."""
Step = Callable[[Batch], tuple[Rows, Rows | None]]
"""What a pass does with one batch: ``(layer values, extra datasets or None)`` to write."""


def _store(
    writer: ActivationWriter,
    row: int,
    jitter: np.ndarray,
    values: Rows,
    extra: Rows | None,
    state: dict[str, Any],
    every_seconds: float,
) -> None:
    """Write one batch, then record the progress (at most every ``every_seconds``)."""
    writer.write_rows(row, jitter, values, extra)
    writer.checkpoint(state, every_seconds)


def _prefetch(iterator: Iterator[Batch], pool: ThreadPoolExecutor) -> Iterator[Batch]:
    """Run ``iterator`` one item ahead in ``pool``."""
    sentinel = object()
    future = pool.submit(next, iterator, sentinel)
    while True:
        item = future.result()
        if item is sentinel:
            return
        future = pool.submit(next, iterator, sentinel)
        yield item


def run_batches(
    writer: ActivationWriter,
    stimuli: StimulusSet,
    spec: ModelSpec,
    options: ExtractionOptions,
    step: Step,
    *,
    pin: bool = False,
    description: str = "",
) -> tuple[list[str], list[str]]:
    """The batched loop shared by the activation and the gradient pass.

    Batches come from :func:`iter_batches` (decoded one batch ahead in a thread), ``step``
    turns each into the rows to write, and the writer stores them one batch behind in
    another thread, recording progress for resume. A writer that reopened a partial file
    (``writer.resumed``) is continued from its recorded image. Returns ``(ids written,
    ids skipped as unreadable)``; finishing or aborting the writer is the caller's.
    """
    ids_written: list[str] = []
    skipped: list[str] = []
    row = 0
    start_image = 0
    if writer.resumed is not None:
        start_image, row = int(writer.resumed["next_image"]), int(writer.resumed["rows"])
        skipped = list(writer.resumed["skipped"])
        ids_written = [sid for sid in stimuli.ids[:start_image] if sid not in set(skipped)]
        log.info(
            "resuming %s from image %d of %d (batch %d, %d rows already written)",
            writer.path,
            start_image,
            len(stimuli),
            start_image // images_per_batch(spec, options),
            row,
        )
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(stimuli),
        desc=description,
        unit="img",
        file=sys.stderr,
        disable=not options.progress,
        mininterval=2.0,
        initial=start_image,
    )
    with (
        ThreadPoolExecutor(1, "actpipe-load") as loader,
        ThreadPoolExecutor(1, "actpipe-write") as saver,
    ):
        pending: Future | None = None
        batches = iter_batches(stimuli, spec, options, pin, start_image)
        for batch in _prefetch(batches, loader):
            skipped.extend(batch.skipped)
            bar.update(len(batch.ids) + len(batch.skipped))
            if not batch.ids:
                continue
            values, extra = step(batch)
            if pending is not None:
                pending.result()
            n_img = len(batch.ids)
            ids_written.extend(batch.ids)
            state = {"next_image": batch.stop, "rows": row + n_img, "skipped": list(skipped)}
            pending = saver.submit(
                _store,
                writer,
                row,
                batch.jitter,
                values,
                extra,
                state,
                options.checkpoint_seconds,
            )
            row += n_img
        if pending is not None:
            pending.result()
    bar.close()
    if not ids_written:
        raise StimulusError(f"no readable image in {stimuli.root}; nothing to extract")
    return ids_written, skipped


def provenance(
    spec: ModelSpec,
    stimuli: StimulusSet,
    stimulus_set: str,
    options: ExtractionOptions,
    device: torch.device,
    weights: dict[str, Any],
    runtime: dict[str, Any],
    malloc_tuned: bool,
    skipped: list[str],
) -> dict[str, Any]:
    """The model group's provenance attributes (docs/format.md), shared by both passes."""
    return {
        "model": spec.describe(),
        "stimulus_set": stimulus_set,
        "stimulus_root": str(stimuli.root),
        "stimulus_options": stimuli.options.to_dict(),
        "weights": weights,
        "preprocess": spec.preprocess.to_dict(),
        "jitter": options.jitter.to_dict(),
        "seed": options.seed,
        "device": str(device),
        "dtype": options.storage.dtype,
        "channels_last": bool(runtime.get("channels_last")),
        "autocast": runtime["autocast"],
        "runtime": runtime,
        "malloc_tuned": malloc_tuned,
        "skipped_ids": skipped,
        "versions": package_versions(),
    }


def select_stimuli(
    stimuli: StimulusSet | str | os.PathLike[str], rows: Sequence[int] | None = None
) -> StimulusSet:
    """``stimuli`` as a :class:`StimulusSet` (a folder is listed), or rows ``[start, stop)``."""
    if not isinstance(stimuli, StimulusSet):
        stimuli = load_stimulus_folder(stimuli)
    if rows is not None:
        stimuli = stimuli.subset(int(rows[0]), int(rows[1]))
    return stimuli


def extract_activations(
    spec: ModelSpec,
    stimuli: StimulusSet | str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: ExtractionOptions | None = None,
    stimulus_set: str = "",
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    rows: Sequence[int] | None = None,
) -> Path:
    """Expose ``spec``'s model to every stimulus and write ``output`` (layer-major HDF5).

    The workflow's ``extract_activations`` rule calls this. ``stimuli`` is a
    :class:`StimulusSet` or a stimulus folder; ``rows = [start, stop)`` takes only those
    stimuli (one shard of the set). With ``on_bad_image: error`` every image is checked
    first (:func:`check_images`), before the model is built, and all problems are reported
    at once; a file that changes or disappears during the run is an error in either mode.
    All layers are captured in one forward pass per batch (torch under
    ``torch.inference_mode``, or onnxruntime for ``onnx`` models). The output
    appears only when complete (temporary file renamed at the end). ``cache_dir`` holds
    instrumented ONNX models (default: beside the .onnx file); ``threads`` sets the number of
    threads of torch and onnxruntime.
    """
    stimuli = select_stimuli(stimuli, rows)
    if threads:
        torch.set_num_threads(int(threads))
    options = options or ExtractionOptions()
    if options.on_bad_image == "error":
        check_images(stimuli, threads)
    malloc_tuned = tune_malloc() if options.tune_malloc else False
    backend = open_backend(
        spec, options.device, options.autocast, options.channels_last, cache_dir, threads
    )
    spec, capture = backend.spec, backend.capture
    set_deterministic(options.seed, backend.device)
    n_rep = options.n_replicates
    writer = ActivationWriter(
        output,
        spec.name,
        len(stimuli),
        n_rep,
        options.storage,
        resume_key(spec, stimuli, options, backend.weights.get("sha256"))
        if options.resume
        else None,
    )
    # Two sets of host buffers, alternating between batches: the forward pass fills one
    # while the writer thread stores the other.
    buffer_sets: list[dict[str, torch.Tensor]] = []
    n_batches = 0

    def step(batch: Batch) -> tuple[Rows, None]:
        nonlocal n_batches
        inputs = backend.prepare(batch.inputs)
        buffers = buffer_sets[n_batches % 2] if buffer_sets else None
        features = capture.run(inputs, buffers)
        n_batches += 1
        n_img = len(batch.ids)
        values = {
            name: t.float()
            .cpu()
            .numpy()
            .reshape(n_img, n_rep, *capture.feature_shapes.get(name, (-1,)))
            for name, t in features.items()
        }
        if not buffer_sets:
            size = images_per_batch(spec, options) * n_rep
            buffer_sets.extend(
                {
                    name: torch.empty((size, t.shape[1]), dtype=torch.float32)
                    for name, t in features.items()
                }
                for _ in range(2)
            )
        if not writer.layer_order:
            # What the capture stores: each probe once (a head selector is read from it),
            # then the attention metrics.
            for layer in capture.layers:
                writer.add_layer(
                    layer.name,
                    values[layer.name].shape[2:],
                    capture.shapes[layer.name],
                    {
                        "reduce": layer.reduce,
                        "reduce_applied": capture.applied[layer.name],
                        "name": layer.name,
                        "module": layer.module,
                        **capture.layer_attrs.get(layer.name, {}),
                    },
                )
        return values, None

    try:
        with torch.inference_mode():
            ids_written, skipped = run_batches(
                writer,
                stimuli,
                spec,
                options,
                step,
                pin=backend.pin_memory,
                description=f"{spec.name} on {stimulus_set or stimuli.root}",
            )
        attrs = provenance(
            spec,
            stimuli,
            stimulus_set,
            options,
            backend.device,
            backend.weights,
            backend.runtime,
            malloc_tuned,
            skipped,
        )
        if backend.transformer is not None:
            attrs["transformer"] = backend.transformer
        path = writer.finish(ids_written, attrs)
    except BaseException:
        writer.abort(keep_progress=options.resume)
        raise
    finally:
        backend.close()
    log.info(
        "wrote %s: %d stimuli x %d replicates, %d layers%s",
        path,
        len(ids_written),
        n_rep,
        len(capture.layers),
        f", skipped {len(skipped)}" if skipped else "",
    )
    return path
