"""Helpers for the deploy tests: the real tools that read the files in `deploy/`.

These tests prove the files with the programs that will read them in production, so a missing
program is a failure naming the Debian package to install (`.ci/run` installs them), never a
silent skip.
"""

from __future__ import annotations

import re
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


ENV_EXAMPLE = ROOT / ".env.example"


def env_lines(path: Path = ENV_EXAMPLE) -> list[tuple[str, str, str]]:
    """(variable, value, the comment line above it) for each `NAME=value` line of an env file.

    Only the plain form every reader agrees on is accepted: systemd's EnvironmentFile, Docker's
    --env-file and a shell's `. file` would read quotes, spaces or `$` differently.
    """
    found = []
    previous = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line and not line.startswith("#"):
            name, equals, value = line.partition("=")
            assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"line {number}: {line!r}"
            assert re.fullmatch(r"[^\s'\"$\\#`]*", value), f"line {number}: {line!r}"
            assert previous.startswith("# ") and not previous.startswith("# --"), (
                f"line {number}: {name} has no one-line comment above it"
            )
            found.append((name, value, previous[2:]))
        previous = line
    return found
