"""The gradient pass of one model on one stimulus set, written as a gradient file.

It shares the activation pass's batches (:func:`~actpipe.extraction.run.iter_batches`: same
stimulus order, decoding, preprocessing, seeded jitter per (seed, stimulus id, replicate),
skipped images), loop, writer and resume (:func:`~actpipe.extraction.run.run_batches`), so
row ``i`` and replicate ``r`` of the gradient file are the exposure of row ``i`` and replicate
``r`` of the activation file made with the same ``extraction:`` settings. Layout:
docs/format.md (gradient files).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import FolderChangedError, ModelError, StimulusError
from ..extraction.backends import open_torch_model, run_settings
from ..extraction.run import (
    Batch,
    ExtractionOptions,
    Rows,
    check_images,
    provenance,
    resume_key,
    run_batches,
    select_stimuli,
)
from ..extraction.runtime import set_deterministic, tune_malloc
from ..models.spec import ModelSpec
from ..preprocess import Jitter, expose, prepare_image
from ..probes import parse_probe, probe_gradients_message
from ..stimuli import StimulusSet
from ..storage import ActivationWriter
from ..storage.format import LAYERS_GROUP, PREDICTED_INDEX, TARGET_INDEX, TARGET_VALUE
from .capture import GradientBatch, GradientCapture
from .settings import GradientOptions, Target
from .targets import check_outputs, class_indices

log = logging.getLogger(__name__)


def _first_exposure(
    stimuli: StimulusSet, spec: ModelSpec, options: ExtractionOptions
) -> torch.Tensor:
    """The unjittered first readable image as a batch of one (for the check before the pass)."""
    for index, path in enumerate(stimuli.paths):
        try:
            image = prepare_image(
                path, spec.preprocess, stimuli.options.max_image_pixels, stimuli.listed(index)
            )
        except FolderChangedError:
            raise
        except StimulusError:
            if options.on_bad_image == "skip":
                continue
            raise
        return expose(image, "", 1, Jitter(), spec.preprocess)[0]
    raise StimulusError(f"no readable image in {stimuli.root}; nothing to compute")


def compute_gradients(
    spec: ModelSpec,
    stimuli: StimulusSet | str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: ExtractionOptions | None = None,
    gradients: GradientOptions | None = None,
    stimulus_set: str = "",
    threads: int | None = None,
    rows: Sequence[int] | None = None,
) -> Path:
    """Write ``output``: per configured layer, the gradient of the target and/or activation x
    gradient for every exposure, in the activation file's layout and row order.

    The workflow's ``compute_gradients`` rule calls this. ``options`` are the run's
    ``extraction:`` settings (replicates, jitter, seed, device, storage, resume), as for
    :func:`~actpipe.extraction.extract_activations`; ``gradients`` the model's ``gradients:``
    block. Before the pass: an ONNX model, a missing label or a label value without a class
    index, a target index beyond the model's outputs and a layer the output does not depend
    on (one forward and backward pass on the first image) are errors. Then one forward and
    one backward pass per batch, without ``inference_mode``. The output appears only when
    complete.
    """
    where = f"model {spec.name!r}"
    if spec.is_onnx:
        raise ModelError(
            f"{where}: gradients need a torch model, and this one runs in onnxruntime (source: "
            "onnx), which has no backward pass here. Compute the gradients of the same network "
            "built in torch (its source and weights file), or set 'gradients: false' in this "
            "model's block"
        )
    probe_layers = [layer.name for layer in spec.layers if parse_probe(layer.probe_name)]
    if probe_layers:
        raise ModelError(probe_gradients_message(where, probe_layers))
    options = options or ExtractionOptions()
    gradients = gradients or GradientOptions()
    target = gradients.target
    stimuli = select_stimuli(stimuli, rows)
    if options.on_bad_image == "error":
        check_images(stimuli, threads)
    class_index = class_indices(target, stimuli, where)
    index_of = (
        None if class_index is None else dict(zip(stimuli.ids, class_index.tolist(), strict=True))
    )
    if gradients.batch_size:
        spec = replace(spec, batch_size=gradients.batch_size)
    if threads:
        torch.set_num_threads(int(threads))
    malloc_tuned = tune_malloc() if options.tune_malloc else False
    device, autocast, channels_last = run_settings(
        spec, options.device, options.autocast, options.channels_last
    )
    model = open_torch_model(spec, device, autocast, channels_last)
    spec = model.spec
    capture = GradientCapture(model.module, spec.layers, spec.name, gradients.store)
    capture.autocast = model.autocast
    n_rep = options.n_replicates
    try:
        set_deterministic(options.seed, device)
        probe = capture.run(model.prepare(_first_exposure(stimuli, spec, options)), Target())
        check_outputs(target, probe.n_outputs, class_index, where)
        log.info(
            "%s: gradients of %s (%d outputs) for %d layers; storing %s",
            where,
            target.describe(),
            probe.n_outputs,
            len(spec.layers),
            ", ".join(gradients.store),
        )
        key = resume_key(
            spec, stimuli, options, model.weights.get("sha256"), {"gradients": gradients.to_dict()}
        )
        writer = ActivationWriter(
            output,
            spec.name,
            len(stimuli),
            n_rep,
            options.storage,
            key if options.resume else None,
        )
    except BaseException:
        capture.remove()
        raise

    secondary = [q for q in gradients.store if q != gradients.primary]

    def add_datasets(result: GradientBatch) -> None:
        for quantity in gradients.store:
            group = LAYERS_GROUP if quantity == gradients.primary else quantity
            for layer in spec.layers:
                writer.add_layer(
                    layer.name,
                    int(result.values[quantity][layer.name].shape[1]),
                    capture.shapes[layer.name],
                    {
                        "reduce": layer.reduce,
                        "reduce_applied": capture.applied[layer.name],
                        "name": layer.name,
                        "module": layer.module,
                        "quantity": quantity,
                    },
                    group=group,
                )
        writer.group[gradients.primary] = h5py.SoftLink(LAYERS_GROUP)
        writer.add_rows(TARGET_INDEX, (n_rep,), np.int64)
        writer.add_rows(TARGET_VALUE, (n_rep,), np.float32)
        writer.add_rows(PREDICTED_INDEX, (n_rep,), np.int64)

    def step(batch: Batch) -> tuple[Rows, Rows]:
        n_img = len(batch.ids)
        labels = None
        if index_of is not None:
            labels = torch.tensor(
                np.repeat([index_of[sid] for sid in batch.ids], n_rep), dtype=torch.long
            )
        result = capture.run(model.prepare(batch.inputs), target, labels)
        if not writer.layer_order:
            add_datasets(result)

        def rows(t: torch.Tensor) -> np.ndarray:
            return t.cpu().numpy().reshape(n_img, n_rep, -1)

        values = {name: rows(t) for name, t in result.values[gradients.primary].items()}
        extra = {
            writer.path_of(name, quantity): rows(t)
            for quantity in secondary
            for name, t in result.values[quantity].items()
        }
        extra[TARGET_INDEX] = result.target_index.cpu().numpy().reshape(n_img, n_rep)
        extra[TARGET_VALUE] = result.target_value.cpu().numpy().reshape(n_img, n_rep)
        extra[PREDICTED_INDEX] = result.predicted_index.cpu().numpy().reshape(n_img, n_rep)
        return values, extra

    try:
        ids_written, skipped = run_batches(
            writer,
            stimuli,
            spec,
            options,
            step,
            pin=model.runtime["pin_memory"],
            description=f"gradients of {spec.name} on {stimulus_set or stimuli.root}",
        )
        attrs = provenance(
            spec,
            stimuli,
            stimulus_set,
            options,
            model.device,
            model.weights,
            model.runtime,
            malloc_tuned,
            skipped,
        )
        attrs.update(
            {
                "quantities": list(gradients.store),
                "layers_quantity": gradients.primary,
                "target": target.to_dict(),
                "n_outputs": probe.n_outputs,
                "gradients": gradients.to_dict(),
            }
        )
        path = writer.finish(ids_written, attrs)
    except BaseException:
        writer.abort(keep_progress=options.resume)
        raise
    finally:
        capture.remove()
    log.info(
        "wrote %s: %d stimuli x %d replicates, %d layers (%s)%s",
        path,
        len(ids_written),
        n_rep,
        len(spec.layers),
        ", ".join(gradients.store),
        f", skipped {len(skipped)}" if skipped else "",
    )
    return path
