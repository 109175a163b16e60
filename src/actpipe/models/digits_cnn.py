"""A small CNN trained on scikit-learn's handwritten digits: a network whose layers learned.

The images are rendered exactly as the ``digits`` stimulus source renders them (8x8 digits
upscaled bilinearly, grey on black, as RGB), so the trained network sees its own kind of
input in the default run. Training is seeded and single-threaded, so it is repeatable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_output, sha256_file, write_json

log = logging.getLogger(__name__)

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
LAYERS = ("features.block1", "features.block2", "features.block3", "pool", "fc1", "fc2")


class DigitsCNN(nn.Module):
    """Three conv blocks (conv, batch norm, ReLU, 2x2 max pool), global pooling, two linears.

    Any input side that is a multiple of 8 works (global average pooling). Modules:
    ``block1``..``block3`` (each ``conv``, ``norm``, ``act``, ``pool``), ``pool``, ``fc1``,
    ``act``, ``fc2`` (the 10 logits).
    """

    def __init__(
        self, channels: tuple[int, int, int] = (16, 32, 64), hidden: int = 64, num_classes: int = 10
    ):
        super().__init__()
        blocks = []
        in_channels = 3
        for i, out_channels in enumerate(channels, start=1):
            blocks.append(
                (
                    f"block{i}",
                    nn.Sequential(
                        OrderedDict(
                            [
                                (
                                    "conv",
                                    nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                                ),
                                ("norm", nn.BatchNorm2d(out_channels)),
                                ("act", nn.ReLU()),
                                ("pool", nn.MaxPool2d(2)),
                            ]
                        )
                    ),
                )
            )
            in_channels = out_channels
        self.features = nn.Sequential(OrderedDict(blocks))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc2(self.act(self.fc1(x)))


def digits_tensors(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits rendered as the stimulus source does, normalised: ``(N, 3, s, s)``."""
    from ..stimuli.digits import load_digits_arrays, upscale

    images, targets = load_digits_arrays()
    pixels = np.stack([upscale(image, size) for image in images]).astype(np.float32) / 255.0
    x = torch.from_numpy(pixels)[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(), torch.from_numpy(targets)


def split_indices(targets: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified split: ``(train indices, held-out indices)``."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(targets))
    train, test = train_test_split(indices, test_size=held_out, random_state=seed, stratify=targets)
    return np.sort(train), np.sort(test)


def _shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random integer translations (one per image), zero-padded: robustness to jitter."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, [max_shift] * 4, value=float(-MEAN[0] / STD[0]))
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())]
    )


def train_digits_cnn(
    weights_out: str | os.PathLike[str],
    metadata_out: str | os.PathLike[str],
    size: int = 32,
    epochs: int = 12,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    held_out: float = 0.25,
    max_shift: int = 2,
    seed: int = 0,
    min_accuracy: float = 0.95,
) -> dict[str, Any]:
    """Train :class:`DigitsCNN`, write its weights (.safetensors) and metadata (JSON).

    The workflow's ``train_digits_cnn`` rule calls this. The held-out accuracy (stratified
    split of ``held_out``) is recorded in the metadata; training fails when it stays below
    ``min_accuracy``. Returns the metadata.
    """
    from safetensors.torch import save_file

    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        x, y = digits_tensors(size)
        train_idx, test_idx = split_indices(y.numpy(), held_out, seed)
        x_train, y_train = x[train_idx], y[train_idx]
        model = DigitsCNN()
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
        steps = epochs * -(-len(train_idx) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_idx), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                inputs = _shift(x_train[batch], generator, max_shift)
                loss = loss_fn(model(inputs), y_train[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            log.info("epoch %d/%d: training loss %.4f", epoch + 1, epochs, total / len(order))
        model.eval()
        with torch.inference_mode():
            predicted = model(x[test_idx]).argmax(dim=1)
        accuracy = float((predicted == y[test_idx]).float().mean())
    finally:
        torch.set_num_threads(threads)
    log.info("held-out accuracy %.4f on %d digits", accuracy, len(test_idx))
    if accuracy < min_accuracy:
        raise RuntimeError(
            f"digits CNN reached held-out accuracy {accuracy:.4f} < {min_accuracy}; "
            "raise 'epochs' or check the training settings"
        )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with atomic_output(weights_out) as tmp:
        save_file(state, str(tmp), metadata={"architecture": "actpipe:digits_cnn"})
    metadata = {
        "architecture": "digits_cnn",
        "source": "actpipe",
        "dataset": "sklearn.datasets.load_digits",
        "input_size": size,
        "preprocess": {
            "preset": "none",
            "size": size,
            "resize": size,
            "mean": list(MEAN),
            "std": list(STD),
        },
        "n_train": int(len(train_idx)),
        "n_held_out": int(len(test_idx)),
        "held_out_accuracy": accuracy,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "max_shift": max_shift,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - started, 2),
        "weights_sha256": sha256_file(weights_out),
        "torch": torch.__version__,
    }
    write_json(metadata_out, metadata)
    return metadata


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def export_digits_cnn(
    weights: str | os.PathLike[str],
    metadata: str | os.PathLike[str],
    output: str | os.PathLike[str],
) -> Path:
    """The trained network as ONNX, its layers (:data:`LAYERS`) as tensors named after the
    torch modules, so the same layer names select the same activations through torch and
    onnxruntime. The workflow's ``export_digits_cnn`` rule calls this."""
    from .onnx import export_onnx
    from .weights import load_state_dict, read_checkpoint

    info = read_metadata(metadata)
    where = f"digits CNN {str(weights)!r}"
    model = DigitsCNN()
    load_state_dict(model, read_checkpoint(weights, where), strict=True, where=where)
    return export_onnx(model.eval(), output, int(info["input_size"]), LAYERS)
