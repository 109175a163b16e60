"""`weights: pretrained` without network fails fast with a message saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
from actpipe.models import ModelSpec, WeightsError, build_model
spec = ModelSpec.from_config("m", {"source": "%s", "name": "resnet18", "weights": "pretrained",
                                    "layers": ["layer1"]})
try:
    build_model(spec)
except WeightsError as exc:
    print(exc)
else:
    print("LOADED")
"""


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_pretrained_offline_points_to_a_local_file(source, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TORCH_HOME": str(tmp_path / "torch"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT % source],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    if "LOADED" in proc.stdout:  # pragma: no cover - only with network access
        pytest.skip("network access: pretrained weights were downloaded")
    assert "model 'm'" in proc.stdout
    assert "weights: /path/to/checkpoint.pth" in proc.stdout
