"""Parameter sets: which keys each method takes, their defaults, and validation.

A parameter set is one entry of the config's ``clustering.parameter_sets`` (or the options of
``actpipe cluster``): ``{method: kmeans, k: 50, seed: 0, ...}``. The keys every method accepts
are in :data:`COMMON_OPTIONS`; the method's own keys are in :data:`METHOD_OPTIONS`. The config
schema lists the same keys (a test checks that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ClusteringError

COMMON_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "replicates": "mean",  # mean: one row per stimulus; each: one row per exposure
    "standardize": False,  # z-score every feature (constant features become 0)
    "reduce": "none",  # none, pca (incremental when streaming) or svd (in-memory methods)
    "n_components": None,  # dimensions kept by reduce
    "nonfinite": "error",  # error, or drop the rows holding NaN/inf (recorded)
    "input": "activations",  # activations, or activations_x_gradients
    "silhouette_sample": 2000,  # silhouette on at most this many seeded rows
    "block_mb": 32,  # size of the blocks a layer is read in
}
COMMON_OPTIONS: tuple[str, ...] = ("method", "k", *COMMON_DEFAULTS)
SCOPE_OPTIONS: tuple[str, ...] = ("models", "stimuli")
"""Keys of a workflow parameter set saying where it applies (which models, which stimulus
sets), not how to cluster: the workflow reads and removes them; :func:`resolve_parameter_set`
does not take them."""

METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "kmeans": {"n_init": 10, "max_iter": 300, "backend": "sklearn"},
    "minibatch_kmeans": {
        "batch_size": 1024,
        "n_epochs": 3,
        "init_sample": 10000,
        "n_init": 3,
    },
    "agglomerative": {"linkage": "ward", "max_rows": 10000},
    "leaders": {
        "threshold": None,
        "k_tolerance": 0.1,
        "sample_size": 5000,
        "max_clusters": 5000,
    },
    "spectral": {
        "affinity": "rbf",
        "gamma": None,
        "n_neighbors": 10,
        "max_rows": 10000,
    },
}
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {m: tuple(d) for m, d in METHOD_DEFAULTS.items()}
STREAMING_METHODS = ("minibatch_kmeans", "leaders")

CHOICES: dict[str, tuple[Any, ...]] = {
    "replicates": ("mean", "each"),
    "reduce": ("none", "pca", "svd"),
    "nonfinite": ("error", "drop"),
    "input": ("activations", "activations_x_gradients"),
    "backend": ("sklearn", "faiss"),
    "linkage": ("ward", "average", "complete"),
    "affinity": ("rbf", "nearest_neighbors"),
    "standardize": (True, False),
}


@dataclass(frozen=True)
class FeatureOptions:
    """How a layer becomes the matrix that is clustered (see docs/clustering.md)."""

    replicates: str = "mean"
    standardize: bool = False
    reduce: str = "none"
    n_components: int | None = None
    nonfinite: str = "error"
    input: str = "activations"
    seed: int = 0
    block_bytes: int = 32 << 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "replicates": self.replicates,
            "standardize": self.standardize,
            "reduce": self.reduce,
            "n_components": self.n_components,
            "nonfinite": self.nonfinite,
            "input": self.input,
        }


@dataclass(frozen=True)
class ParameterSet:
    """A validated parameter set with every default filled in."""

    name: str
    method: str
    k: int | None
    seed: int
    features: FeatureOptions
    silhouette_sample: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return self.method in STREAMING_METHODS

    def to_dict(self) -> dict[str, Any]:
        """Every parameter actually used (recorded in outputs)."""
        return {
            "method": self.method,
            "k": self.k,
            "seed": self.seed,
            **self.features.to_dict(),
            "silhouette_sample": self.silhouette_sample,
            **self.options,
        }


def resolve_parameter_set(params: dict[str, Any], name: str = "") -> ParameterSet:
    """Check a parameter set and fill in defaults; errors name the set and the key."""
    where = f"parameter set {name!r}" if name else "parameter set"
    params = dict(params)
    method = params.get("method")
    if method not in METHOD_DEFAULTS:
        raise ClusteringError(
            f"{where}: unknown method {method!r}; choose one of {', '.join(METHOD_DEFAULTS)}"
        )
    allowed = set(COMMON_OPTIONS) | set(METHOD_OPTIONS[method])
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ClusteringError(
            f"{where}: {', '.join(unknown)} not an option of method {method!r} (its options: "
            f"{', '.join(sorted(allowed - {'method'}))})"
        )
    merged = {**COMMON_DEFAULTS, **METHOD_DEFAULTS[method], **params}
    for key, choices in CHOICES.items():
        if key in merged and merged[key] not in choices:
            raise ClusteringError(
                f"{where}: {key}={merged[key]!r}; choose one of {', '.join(map(str, choices))}"
            )
    k = merged.get("k")
    if k is None and not (method == "leaders" and merged.get("threshold") is not None):
        raise ClusteringError(
            f"{where}: method {method!r} needs k (number of clusters)"
            + (" or threshold" if method == "leaders" else "")
        )
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int):
            raise ClusteringError(f"{where}: k must be an integer, got {k!r}")
        if k < 2:
            raise ClusteringError(f"{where}: k must be at least 2, got {k}")
    if merged["reduce"] != "none":
        d = merged["n_components"]
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ClusteringError(
                f"{where}: reduce={merged['reduce']!r} needs n_components (a positive integer)"
            )
    elif merged["n_components"] is not None:
        raise ClusteringError(f"{where}: n_components is set but reduce is 'none'")
    if merged["reduce"] == "svd" and method in STREAMING_METHODS:
        raise ClusteringError(
            f"{where}: reduce='svd' needs the whole layer in memory; streaming method "
            f"{method!r} takes reduce='pca' (incremental)"
        )
    if merged["input"] != "activations" and method != "spectral":
        raise ClusteringError(
            f"{where}: input={merged['input']!r} is offered by method 'spectral' only"
        )
    threshold = merged.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float) and threshold > 0):
        raise ClusteringError(f"{where}: threshold must be a positive number, got {threshold!r}")
    if int(merged["silhouette_sample"]) < 2:
        raise ClusteringError(f"{where}: silhouette_sample must be at least 2")
    features = FeatureOptions(
        replicates=merged["replicates"],
        standardize=bool(merged["standardize"]),
        reduce=merged["reduce"],
        n_components=merged["n_components"],
        nonfinite=merged["nonfinite"],
        input=merged["input"],
        seed=int(merged["seed"]),
        block_bytes=max(1, int(float(merged["block_mb"]) * (1 << 20))),
    )
    options = {key: merged[key] for key in METHOD_OPTIONS[method]}
    return ParameterSet(
        name=name,
        method=method,
        k=None if k is None else int(k),
        seed=int(merged["seed"]),
        features=features,
        silhouette_sample=int(merged["silhouette_sample"]),
        options=options,
    )
