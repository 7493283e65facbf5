"""Starting wastatus processes for a test, and finding and killing a process's whole family,
whatever group or session each member is in.

RQ's work horse puts itself in a process group of its own (`os.setpgrp()`), so killing a
worker's group leaves the job running; a test that means "the worker died mid-job" kills the
whole family instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from workers import settings


def processes() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, state, command line)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        found[int(stat.parent.name)] = (int(fields[1]), fields[0], cmdline)
    return found


def descendants(pid: int) -> set[int]:
    """The processes `pid` started, and theirs."""
    table, found, frontier = processes(), set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _, _) in table.items() if parent in frontier}
        found |= frontier
    return found


def alive(pids: set[int]) -> list[str]:
    """Command lines of those of `pids` still running (zombies count as gone)."""
    table = processes()
    return [table[pid][2] for pid in pids if pid in table and table[pid][1] != "Z"]


def terminate(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM `process` and wait; after `timeout`, SIGKILL its group (or it, if it leads none)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            process.kill()
        process.wait()


def kill_family(pid: int) -> None:
    """SIGKILL `pid` and every descendant at once, as a crash of the machine would."""
    family = descendants(pid) | {pid}
    for member in family:  # freeze first, so nobody forks or writes meanwhile
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)
    for member in descendants(pid) | family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def wait_until_gone(pids: set[int], timeout: float = 40) -> list[str]:
    """Wait for `pids` to end; returns the command lines of those still running."""
    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The test process's environment without any wastatus setting (every declared variable,
    anything `WASTATUS_` or `REDIS_`, a metrics folder), data under `tmp_path`, plus `overrides`."""
    names = {row["variable"] for row in settings.describe()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in names and not key.startswith(("WASTATUS_", "REDIS_"))
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["WASTATUS_DATA_DIR"] = str(tmp_path / "data")
    return env | overrides


def spawn(args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """`wastatus ARGS` in a session of its own (so its group can be killed), output to `log`."""
    with log.open("ab") if log else contextlib.nullcontext() as output:
        return subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )


def wait_for_http(
    base: str, process: subprocess.Popen, log: Path | None = None, timeout: float = 60
) -> None:
    """Wait until `base`/healthz answers 200; if `process` exits or `timeout` passes first,
    stop it and fail the test with the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # refused, or not answered yet (a loaded machine)
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            terminate(process)
            output = log.read_text()[-3000:] if log else "(no log)"
            pytest.fail(f"{' '.join(map(str, process.args))} did not serve: {output}")
        time.sleep(0.1)
