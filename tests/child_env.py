"""The environment of a child interpreter started by a test (a script, torchrun)."""
from __future__ import annotations

import os
from pathlib import Path

import dmt_wrap


def same_code_env(**extra: str) -> dict[str, str]:
    """``os.environ`` plus ``extra``, with the repository root first on ``PYTHONPATH``.

    The child then imports the very ``dmt_wrap`` under test and the ``tests`` package (for
    ``tests.toy``), whether or not the package is installed.
    """
    source_root = str(Path(dmt_wrap.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, **extra, "PYTHONPATH": path}
