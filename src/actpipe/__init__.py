"""actpipe: neural-network activations to HDF5, clusters and cluster paths.

The top-level namespace stays light (no torch import) so that the Snakefile and the
command line start fast; heavy modules are imported where they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
