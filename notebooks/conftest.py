"""nbval runs of the notebooks: their demo workspaces go to a throw-away WB_HOME, not the user's."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_HOME: list[str] = [""]


def pytest_configure(config: pytest.Config) -> None:
    # Kernels inherit this process's environment, so the notebooks' demo workspaces and the
    # demo passphrase stay inside a temporary folder for the test run.
    if "WB_HOME" not in os.environ:
        os.environ["WB_HOME"] = _HOME[0] = tempfile.mkdtemp(prefix="wb-nbval-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _HOME[0]:
        shutil.rmtree(_HOME[0], ignore_errors=True)
        os.environ.pop("WB_HOME", None)
