"""Helpers for the deploy tests: the real tools that read the files in `deploy/`.

These tests prove the files with the programs that will read them in production, so a missing
program is a failure naming the Debian package to install (`.ci/run` installs them), never a
silent skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "systemd-analyze": "systemd",
    "systemd-sysusers": "systemd",
}
"""Program -> the Debian package that ships it (README, Tests)."""


def tool(name: str) -> str:
    """The path of the program `name`; fails the test, naming its package, when it is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: apt-get install {PACKAGES[name]} (README, Tests)",
            pytrace=False,
        )
    return found
