"""The package version: the one place that pyproject.toml, the package and the workflow read.

Standard library only (the Snakefile reads it at parse time). A new version is recorded in
every output and reruns every job of a workflow.
"""

__version__ = "0.1.0"
