"""Every error actpipe raises about its input, in one place.

Each is a ``ValueError`` (``ActivationKeyError`` a ``KeyError``) whose message names the file,
config key, model or layer concerned and says what to do. The stage that raises one also
exports it (``actpipe.models.ModelError`` is this module's ``ModelError``).
"""

from __future__ import annotations


class ModelError(ValueError):
    """A model block that cannot be turned into a model."""


class LayerError(ValueError):
    """A layer that the model does not have, or whose output cannot be reduced as asked."""


class WeightsError(ValueError):
    """Weights that cannot be loaded into the configured model."""


class StimulusError(ValueError):
    """A stimulus folder or image that cannot be used as it is."""


class FolderChangedError(StimulusError):
    """A stimulus folder whose files changed while a job was reading them (never skipped)."""


class FormatError(ValueError):
    """A file that does not follow actpipe's HDF5 layout (or a newer one)."""


class ActivationKeyError(KeyError):
    """A model, stimulus id or layer that is not in the file; the message lists what is."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TargetError(ValueError):
    """A gradient target that cannot be computed for these stimuli or this model (a label
    without a class index, an index beyond the model's outputs)."""


class ClusteringError(ValueError):
    """Parameters or data that a clustering method cannot work with.

    Messages name the file, model, layer and parameter set concerned and say what to change.
    """
