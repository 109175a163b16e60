"""Running the repository's workflow in a temporary directory: a tiny config and a runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def tiny_config() -> dict:
    """A small but complete config: two generated sets, two models, one parameter set."""
    return {
        "output_prefix": "model_activations",
        "stimuli": {
            "gratings": {
                "source": "gratings",
                "size": 32,
                "orientations": 4,
                "phases": 1,
                "spatial_frequencies": [2, 4],
            },
            "digits": {"source": "digits", "size": 32, "n": 20},
        },
        "models": {
            "resnet18": {
                "source": "torchvision",
                "name": "resnet18",
                "weights": "random",
                "layers": ["layer1", "layer3", {"name": "avgpool", "reduce": "flatten"}],
                "reduce": "mean",
                "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
                "batch_size": 8,
            },
            "vit_tiny": {
                "source": "timm",
                "name": "vit_tiny_patch16_224",
                "kwargs": {"img_size": 32},
                "layers": ["blocks.0", "blocks.11"],
                "reduce": "cls",
                "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
                "batch_size": 8,
            },
        },
        "extraction": {
            "n_replicates": 2,
            "seed": 0,
            "progress": False,
            "jitter": {"translate": 2, "rotate": 5},
        },
        "clustering": {"parameter_sets": {"kmeans_k3": {"method": "kmeans", "k": 3, "n_init": 2}}},
    }


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run the repository's workflow with ``workdir`` as working directory."""
    cmd = [SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc
