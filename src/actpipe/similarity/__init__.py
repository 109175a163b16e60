"""Representational similarity of layers: RDMs, RSA, linear CKA and theory RDMs.

Workflow entries (one per rule): :func:`compute_rdms` (``results/similarity/{set}/{model}/
rdms.h5``) and :func:`compare_layers` (``results/similarity/{set}/compare.h5`` and
``compare.tsv``). In memory: :func:`rdm_from_patterns`, :func:`rsa`, :func:`compare_rdms`,
:func:`linear_cka`, :func:`theory_rdm`. Streaming building blocks: :func:`stimulus_rdms`,
:func:`condition_rdms`, :func:`cka_matrix`. Files: :class:`RDMFile`,
:func:`read_comparison`, :func:`export_rsatoolbox`. Report and site: :func:`render_section`,
:func:`page_data`. Formulas and layouts: ``docs/similarity.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Public name -> module; imported on first use, so `actpipe --help` stays fast.
_NAMES = {
    "CKAOptions": "cka",
    "CKAResult": "cka",
    "LayerInput": "cka",
    "cka_matrix": "cka",
    "hsic_terms": "cka",
    "linear_cka": "cka",
    "RSA_METHODS": "compare",
    "RDMCollection": "compare",
    "compare_rdms": "compare",
    "kendall_tau_a": "compare",
    "rsa": "compare",
    "DISTANCES": "distances",
    "condensed_subset": "distances",
    "square": "distances",
    "Comparison": "files",
    "RDMFile": "files",
    "export_rsatoolbox": "files",
    "read_comparison": "files",
    "StimulusLabels": "labels",
    "SimilarityOptions": "options",
    "condition_rdms": "rdm",
    "rdm_from_patterns": "rdm",
    "stimulus_rdms": "rdm",
    "render_section": "report",
    "compare_files": "run",
    "compare_layers": "run",
    "compute_rdms": "run",
    "page_data": "site",
    "Subsample": "subsample",
    "balanced_subsample": "subsample",
    "Theory": "theory",
    "theory_rdm": "theory",
}

__all__ = [
    "CKAOptions",
    "CKAResult",
    "Comparison",
    "DISTANCES",
    "LayerInput",
    "RDMCollection",
    "RDMFile",
    "RSA_METHODS",
    "SimilarityOptions",
    "StimulusLabels",
    "Subsample",
    "Theory",
    "balanced_subsample",
    "cka_matrix",
    "compare_files",
    "compare_layers",
    "compare_rdms",
    "compute_rdms",
    "condensed_subset",
    "condition_rdms",
    "export_rsatoolbox",
    "hsic_terms",
    "kendall_tau_a",
    "linear_cka",
    "page_data",
    "rdm_from_patterns",
    "read_comparison",
    "render_section",
    "rsa",
    "square",
    "stimulus_rdms",
    "theory_rdm",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'actpipe.similarity' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


if TYPE_CHECKING:  # pragma: no cover
    from .cka import CKAOptions, CKAResult, LayerInput, cka_matrix, hsic_terms, linear_cka
    from .compare import RSA_METHODS, RDMCollection, compare_rdms, kendall_tau_a, rsa
    from .distances import DISTANCES, condensed_subset, square
    from .files import Comparison, RDMFile, export_rsatoolbox, read_comparison
    from .labels import StimulusLabels
    from .options import SimilarityOptions
    from .rdm import condition_rdms, rdm_from_patterns, stimulus_rdms
    from .report import render_section
    from .run import compare_files, compare_layers, compute_rdms
    from .site import page_data
    from .subsample import Subsample, balanced_subsample
    from .theory import Theory, theory_rdm
