"""deploy/systemd: the units pass `systemd-analyze verify` and `security`, and their user exists.

`verify` checks that ExecStart's program exists and is executable, so the units are verified
inside a temporary root holding what an installed machine has: this system's own units (the
targets ours depend on), our units in /etc/systemd/system, and an executable at the path our
ExecStart names. The real `/opt/wastatus` need not exist on the test machine. Then each
ExecStart command line runs for real, from this checkout's venv, with .env.example as its
environment file, and stops on SIGTERM as systemd stops it (KillMode=mixed).
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from rq import Worker

from tests.deploy.conftest import DEPLOY, env_lines, tool
from tests.processes import terminate
from webhook.cli.redis_server import free_port

UNITS = DEPLOY / "systemd"
BIN = Path(sys.executable).parent
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
INSTANCES = {"wastatus-web.service": "wastatus-web.service",
             "wastatus-worker@.service": "wastatus-worker@1.service"}  # fmt: skip
"""Unit file -> the unit name verified (a template is verified as one of its instances)."""

MAX_EXPOSURE = 20
"""`systemd-analyze security --threshold`, in tenths: each unit's exposure must stay below 2.0."""


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


def exec_path(name: str) -> str:
    return unit(name)["Service"]["ExecStart"].split()[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A temporary root with this system's units, ours, and an executable at ExecStart's path."""
    if not SYSTEM_UNITS.is_dir():
        pytest.fail(f"{SYSTEM_UNITS} is missing: apt-get install systemd", pytrace=False)
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")  # the copied units' links point into /lib
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in INSTANCES:
        shutil.copy(UNITS / name, root / "etc/systemd/system" / name)
        program = root / exec_path(name).lstrip("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("systemd-analyze"), *args, f"--root={root}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


class TestVerify:
    """`systemd-analyze verify` accepts each unit without a single warning."""

    @pytest.mark.parametrize("name", sorted(INSTANCES))
    def test_unit_verifies_clean(self, root, name):
        """Exit 0 and no output: an unknown key or a bad value would print a warning."""
        result = analyze(root, "verify", str(root / "etc/systemd/system" / INSTANCES[name]))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout + result.stderr == ""

    def test_a_missing_program_fails_verify(self, root):
        """The check is real: without the program ExecStart names, verify fails."""
        (root / exec_path("wastatus-web.service").lstrip("/")).unlink()
        result = analyze(root, "verify", str(root / "etc/systemd/system/wastatus-web.service"))
        assert result.returncode != 0
        assert "is not executable" in result.stderr

    @pytest.mark.parametrize("name", sorted(INSTANCES))
    def test_exposure_is_low(self, root, name):
        """`systemd-analyze security` rates each unit's exposure below 2.0 (of 10)."""
        path = str(root / "etc/systemd/system" / INSTANCES[name])
        result = analyze(root, "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr


class TestUnitSettings:
    """Each unit runs as its own user, restarts, reads the env file and is hardened."""

    HARDENING = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
    }  # fmt: skip

    @pytest.mark.parametrize("name", sorted(INSTANCES))
    def test_user_restart_env_and_hardening(self, name):
        """User wastatus, Restart=always but not on exit 2, the env file, and hardening."""
        service = unit(name)["Service"]
        assert (service["User"], service["Group"]) == ("wastatus", "wastatus")
        assert service["Restart"] == "always"
        assert service["RestartPreventExitStatus"] == "2"
        assert service["EnvironmentFile"] == "/etc/wastatus/wastatus.env"
        assert service["KillMode"] == "mixed"
        for key, value in self.HARDENING.items():
            assert service[key] == value, key
        assert unit(name)["Unit"]["StartLimitIntervalSec"] == "0"

    def test_worker_waits_for_its_job_to_finish(self):
        """A worker's stop timeout outlasts the longest job (120 s), so a warm stop completes."""
        assert int(unit("wastatus-worker@.service")["Service"]["TimeoutStopSec"]) > 120


class TestUser:
    """The sysusers.d file creates the user and group the units run as."""

    def test_systemd_sysusers_creates_the_user(self, tmp_path):
        """systemd-sysusers, in a temporary root, writes the wastatus user with no login."""
        program = tool("systemd-sysusers")
        (tmp_path / "etc").mkdir()
        result = subprocess.run(
            [program, f"--root={tmp_path}", str(UNITS / "wastatus.sysusers.conf")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        user = (tmp_path / "etc/passwd").read_text().split(":")
        assert user[0] == unit("wastatus-web.service")["Service"]["User"]
        assert user[5:] == ["/var/lib/wastatus", "/usr/sbin/nologin\n"]
        assert (tmp_path / "etc/group").read_text().startswith("wastatus:")


class TestExecStart:
    """Each unit's ExecStart runs with .env.example as its EnvironmentFile, and stops on SIGTERM."""

    @pytest.fixture
    def unit_env(self, redis_url, tmp_path) -> dict[str, str]:
        """.env.example with what a deployment sets: Redis, a secret, a port, a data dir."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("WASTATUS_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update({name: value for name, value, _ in env_lines()})
        env.update({"REDIS_URL": redis_url, "WASTATUS_APP_SECRET": "unit-test-secret",
                    "PORT": str(free_port()), "WASTATUS_DATA_DIR": str(tmp_path / "data"),
                    "WEB_CONCURRENCY": "1", "TMPDIR": str(tmp_path)})  # fmt: skip
        return env

    def command(self, name: str) -> list[str]:
        """ExecStart with this checkout's venv in place of /opt/wastatus/.venv."""
        program, *args = unit(name)["Service"]["ExecStart"].split()
        assert program == "/opt/wastatus/.venv/bin/wastatus"
        return [str(BIN / "wastatus"), *args]

    def test_web(self, unit_env, redis, tmp_path):
        """`wastatus serve` answers /readyz on 127.0.0.1:$PORT, then exits 0 on SIGTERM."""
        log = tmp_path / "web.log"
        with log.open("wb") as output:
            process = subprocess.Popen(self.command("wastatus-web.service"), env=unit_env,
                                       stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{unit_env['PORT']}/readyz"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url, timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            terminate(process)
        assert process.returncode == 0, log.read_text()

    def test_worker(self, unit_env, redis, tmp_path):
        """`wastatus worker` registers with RQ, then exits 0 on SIGTERM (a warm stop)."""
        log = tmp_path / "worker.log"
        with log.open("wb") as output:
            process = subprocess.Popen(self.command("wastatus-worker@.service"), env=unit_env,
                                       stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while Worker.count(connection=redis) == 0:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            terminate(process)
        assert process.returncode == 0, log.read_text()
