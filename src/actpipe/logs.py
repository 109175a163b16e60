"""Where a rule's messages go: logging, warnings, progress bars and tracebacks to its log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def logging_to(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Send logging, warnings, progress bars and tracebacks of a rule to its log file.

    ``None`` logs to standard error instead (for use outside the workflow).
    """
    if path is None:
        logging.basicConfig(level=logging.INFO, format=FORMAT)
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        old_stderr = sys.stderr
        sys.stderr = log_file
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield
        except BaseException:
            logging.getLogger("actpipe").exception("rule failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr = old_stderr
