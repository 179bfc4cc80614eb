"""Quiet the exporting toolkits (executorch, coremltools, torch, torchao) while our own progress line reports."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

TOOLKIT_LOGGERS = ("executorch", "coremltools", "torch", "torchao")


@contextlib.contextmanager
def quiet_toolkits() -> Iterator[None]:
    """Silence the exporters' own logging, warnings and progress bars (our progress line replaces them)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("ET_COREML_LOG_LEVEL", "ERROR")  # the CoreML partitioner logs at INFO by default
    levels = {name: logging.getLogger(name).level for name in TOOLKIT_LOGGERS}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
