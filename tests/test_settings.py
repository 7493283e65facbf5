"""Every setting is read once, when a process starts: the duration parser, the ranges, the
refusals of each entry point, and real processes started with durations in every unit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests import processes
from tests.conftest import APP_SECRET, load_fixture
from tests.processes import terminate
from webhook.cli import main
from webhook.cli.redis_server import free_port
from webhook.signature import sign
from workers import settings
from workers.settings import DURATION_FORM, Settings, SettingsError, parse_duration, read

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROCFILE_WEB = [str(BIN / "gunicorn"), "webhook:create_app()", "-c", "python:webhook.gunicorn_conf"]
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
ROWS = settings.describe()
DURATIONS = [row for row in ROWS if row["form"] == DURATION_FORM]
FREE_TEXT = {  # any text is a valid value of these: nothing to refuse
    "WASTATUS_REDIS_SENTINEL_MASTER",
    "WASTATUS_REDIS_SENTINEL_PASSWORD",
    "WASTATUS_REDIS_PASSWORD",
    "WASTATUS_DATA_DIR",
    "WASTATUS_APP_SECRET",
    "WASTATUS_ONPREM_TOKEN",
    "WASTATUS_VERIFY_TOKEN",
    "WASTATUS_RULES",
}
BAD_BY_FORM = {
    DURATION_FORM: "soon",
    "a whole number": "many",
    "a number per second (200, 200/s, 12000/m)": "fast",
    "1, true, yes, on or 0, false, no, off": "maybe",
    "an http:// or https:// URL": "ftp://example.com/x",
    "a redis://, rediss:// or unix:// URL": "http://127.0.0.1:6379",
    "host:port, comma-separated": "sentinel:port",
    "whsec_ followed by base64": "whsec_!!!",
    "ja or en": "fr",
    "user:password-hash pairs, comma-separated (wastatus console hash-password)": "alice:hunter2",
    "text of at least 32 characters": "short",
    "Apprise URLs, comma-separated": "whatsapp://15551234567",
    "http:// or https:// URLs, comma-separated": "http://am-1:9093,am-2:9093",
    "a percentage (20, 20%)": "most",
}
BAD_BY_VARIABLE = {
    "WASTATUS_LOG_LEVEL": "loud",
    "WASTATUS_LOG_REQUESTS": "some",
    "WASTATUS_SERVER": "uwsgi",
}


def _bad(row: dict) -> str | None:
    return BAD_BY_VARIABLE.get(row["variable"]) or BAD_BY_FORM.get(row["form"])


def _out_of_range(row: dict) -> list[str]:
    """Values just outside the row's range, written in its form."""
    if row["low"] is None:
        return []
    if row["form"] == DURATION_FORM:
        below = [written(row["low"] / 2, "ms")] if row["low"] > 0 else []
        return [*below, written(row["high"] * 2, "s")]
    if row["form"] == "a whole number":
        below = [str(int(row["low"]) - 1)] if row["low"] > 0 else []
        return [*below, str(int(row["high"]) + 1)]
    return [f"{row['high'] * 2:.0f}"]


def written(seconds: float, unit: str) -> str:
    """`seconds` written in `unit` (a decimal, never an exponent)."""
    number = f"{seconds / UNITS[unit]:.12f}".rstrip("0").rstrip(".")
    return f"{number or '0'}{unit}"


class TestParseDuration:
    """`parse_duration` reads ms, s, m, h, d or bare seconds, and nothing else."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("500ms", 0.5), ("30s", 30), ("5m", 300), ("4h", 14400), ("8d", 691200), ("45", 45),
         ("1.5h", 5400), (".5s", 0.5), (" 30 S ", 30), ("2MS", 0.002), ("0", 0), ("0d", 0),
         (2, 2), (2.5, 2.5)],
    )  # fmt: skip
    def test_each_unit_and_bare_seconds(self, text, seconds):
        """Each unit multiplies, in any case and with spaces around; a bare number is seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize(
        "text", ["", "s", "ms", "soon", "30x", "1e3", "30 minutes", "1h30m", "nan", "inf", "1,5s",
                 "0x10", True, None, [30]],
    )  # fmt: skip
    def test_junk_is_refused_with_the_accepted_form(self, text):
        """Anything but a number with an optional unit is refused, naming the forms."""
        with pytest.raises(ValueError, match="not a duration: use a number of seconds"):
            parse_duration(text)

    @pytest.mark.parametrize("text", ["-5s", "-1", " -0.5ms", -5, -0.1])
    def test_negative_is_refused(self, text):
        """A negative duration is refused as such, in text or as a YAML number."""
        with pytest.raises(ValueError, match="negative"):
            parse_duration(text)

    @pytest.mark.parametrize("text", ["9" * 400, "9" * 400 + "d", float("inf"), float("nan")])
    def test_huge_or_not_finite_is_refused(self, text):
        """A value that overflows to infinity (or NaN from YAML) is not a duration."""
        with pytest.raises(ValueError, match=r"too large|not a duration"):
            parse_duration(text)


class TestRead:
    """`read` validates every setting, reporting each bad one by variable, value and form."""

    def test_defaults_without_any_variable(self):
        """An empty environment gives the declared defaults; blank values count as unset."""
        assert read({}) == Settings()
        assert read({"WASTATUS_HTTP_TIMEOUT": "  ", "PORT": ""}) == Settings()

    def test_every_setting_is_covered_below(self):
        """Each setting has a bad value below or takes any text (a new one must say which)."""
        covered = {row["variable"] for row in ROWS if _bad(row) is not None}
        assert covered.isdisjoint(FREE_TEXT)
        assert covered | FREE_TEXT == {row["variable"] for row in ROWS}

    @pytest.mark.parametrize(
        ("variable", "value"),
        [(row["variable"], _bad(row)) for row in ROWS if _bad(row) is not None],
    )
    def test_each_unreadable_value_is_refused_naming_the_variable(self, variable, value):
        """A value that is not of the setting's form is one problem naming the variable."""
        with pytest.raises(SettingsError) as caught:
            read({variable: value})
        [problem] = caught.value.problems
        assert problem.startswith(f"{variable}=")

    @pytest.mark.parametrize(
        ("variable", "value"),
        [(row["variable"], value) for row in ROWS for value in _out_of_range(row)],
    )
    def test_each_value_out_of_range_is_refused_with_the_range(self, variable, value):
        """A value that parses but lies outside the setting's range is refused, with the range."""
        with pytest.raises(SettingsError) as caught:
            read({variable: value})
        [problem] = caught.value.problems
        assert problem.startswith(f"{variable}=") and "out of range" in problem
        assert " from " in problem and " to " in problem

    @pytest.mark.parametrize(
        "variable",
        ["WASTATUS_DEDUP_WINDOW", "WASTATUS_REPEAT_INTERVAL", "WASTATUS_MAX_BODY",
         "WEB_CONCURRENCY", "PORT", "WASTATUS_DRAIN_BATCH", "WASTATUS_HTTP_TIMEOUT"],
    )  # fmt: skip
    def test_zero_is_refused_where_it_means_nothing(self, variable):
        """0 would answer 503 to every failure, notify in a loop, refuse every POST, answer
        nothing: refused at start."""
        with pytest.raises(SettingsError, match=f"{variable}='0': out of range"):
            read({variable: "0"})

    @pytest.mark.parametrize(
        ("variable", "attribute"),
        [("WASTATUS_GROUP_WAIT", "group_wait"), ("WASTATUS_RETRY_RATE", "retry_rate"),
         ("WASTATUS_REDIS_DB", "redis_db")],
    )  # fmt: skip
    def test_zero_is_taken_where_it_means_something(self, variable, attribute):
        """0 is a valid group wait (send at once), retry rate (no cap) and Redis database."""
        assert getattr(read({variable: "0"}), attribute) == 0

    def test_the_issue_s_values_are_taken(self):
        """`WASTATUS_REDIS_TIMEOUT=10s` and the other documented forms are read as seconds."""
        found = read({"WASTATUS_REDIS_TIMEOUT": "10s", "WASTATUS_HTTP_TIMEOUT": "1500ms",
                      "WASTATUS_DRAIN_SECONDS": "10s", "WASTATUS_DEDUP_WINDOW": "8d",
                      "WASTATUS_RETRY_RATE": "12000/m"})  # fmt: skip
        assert (found.redis_timeout, found.http_timeout, found.drain_seconds) == (10, 1.5, 10)
        assert (found.dedup_window, found.retry_rate) == (8 * 86400, 200)

    @pytest.mark.parametrize("unit", list(UNITS))
    @pytest.mark.parametrize("row", DURATIONS, ids=lambda row: row["variable"])
    def test_every_duration_setting_takes_every_unit(self, row, unit):
        """Each duration setting reads its default written in each unit as the same seconds."""
        value = read({row["variable"]: written(row["default"], unit)})
        assert getattr(value, row["attribute"]) == pytest.approx(row["default"], rel=1e-6)

    def test_every_problem_is_reported_at_once(self):
        """Three bad values give three sentences, not the first one only."""
        with pytest.raises(SettingsError) as caught:
            read({"PORT": "http", "WASTATUS_LANG": "fr", "WEB_CONCURRENCY": "0"})
        assert [p.split("=")[0] for p in caught.value.problems] == [
            "PORT", "WEB_CONCURRENCY", "WASTATUS_LANG"
        ]  # fmt: skip

    def test_backoff_ceiling_below_its_base_is_refused(self):
        """A retry ceiling below its base delay is refused, naming both variables."""
        with pytest.raises(SettingsError, match=r"WASTATUS_RETRY_MAX_DELAY .* WASTATUS_RETRY_BASE"):
            read({"WASTATUS_RETRY_BASE_DELAY": "2h", "WASTATUS_RETRY_MAX_DELAY": "1h"})

    @pytest.mark.parametrize(
        ("variable", "value", "hidden"),
        [("WASTATUS_RETRY_SECRET", "whsec_hunter2!!", "hunter2"),
         ("WASTATUS_ALERT_WEBHOOK_SECRET", "hunter2", "hunter2"),
         ("WASTATUS_ALERT_URLS", "slack://hunter2, whatsapp://x", "hunter2"),
         ("REDIS_URL", "http://:hunter2@127.0.0.1:6379", "hunter2"),
         ("WASTATUS_ALERT_WEBHOOK_URL", "ftp://user:hunter2@example.com", "hunter2"),
         ("WASTATUS_ALERTMANAGER_URL", "http://am:9093,ftp://user:hunter2@am-2", "hunter2")],
    )  # fmt: skip
    def test_secrets_are_not_echoed(self, variable, value, hidden):
        """A bad secret, token-bearing URL or URL password is never printed in the problem."""
        with pytest.raises(SettingsError) as caught:
            read({variable: value})
        assert variable in caught.value.report() and hidden not in caught.value.report()


class TestCurrent:
    """`current()` gives the settings of the process environment, read again only on change."""

    def test_same_object_until_the_environment_changes(self, monkeypatch):
        """Unchanged, the validated object is reused; a changed variable is read again."""
        monkeypatch.setenv("WASTATUS_HTTP_TIMEOUT", "3s")
        first = settings.current()
        assert settings.current() is first and first.http_timeout == 3
        monkeypatch.setenv("WASTATUS_HTTP_TIMEOUT", "4s")
        assert settings.current().http_timeout == 4

    def test_bad_environment_raises(self, monkeypatch):
        """A job never sees a bad value: current() raises, as the process's start did."""
        monkeypatch.setenv("WASTATUS_HTTP_TIMEOUT", "soon")
        with pytest.raises(SettingsError, match="WASTATUS_HTTP_TIMEOUT"):
            settings.current()


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A clean environment (tests/processes.py), quiet, with a temporary folder of its own."""
    quiet = {"TMPDIR": str(tmp_path), "WASTATUS_LOG_LEVEL": "WARNING"}
    return processes.clean_env(tmp_path, **(quiet | overrides))


BAD = {"WASTATUS_DEDUP_WINDOW": "0", "WASTATUS_HTTP_TIMEOUT": "soon"}


class TestRefusedAtStart:
    """Each process entry point stops at once on a bad setting: exit 2, the problems, no
    traceback, nothing started."""

    @pytest.mark.parametrize(
        "command",
        [["serve"], ["worker"], ["up", "--port", "0"], ["status"], ["dead", "list"]],
        ids=lambda command: command[0],
    )
    def test_wastatus_commands(self, command, tmp_path, redis_url):
        """`wastatus serve|worker|up|…` exit 2 naming each bad variable and its value."""
        env = clean_env(tmp_path, REDIS_URL=redis_url, **BAD)
        started = time.monotonic()
        done = subprocess.run([str(BIN / "wastatus"), *command], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "WASTATUS_DEDUP_WINDOW='0': out of range" in done.stderr
        assert "WASTATUS_HTTP_TIMEOUT='soon': 'soon' is not a duration" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert not (tmp_path / "data").exists()  # `up` made no data dir, started no Redis
        assert time.monotonic() - started < 30

    def test_gunicorn_as_the_procfile_runs_it(self, tmp_path, redis_url):
        """The Procfile's gunicorn command stops in its arbiter, before any worker boots."""
        env = clean_env(tmp_path, REDIS_URL=redis_url, WASTATUS_INSECURE="1", **BAD)
        command = [*PROCFILE_WEB, "--bind", f"127.0.0.1:{free_port()}"]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "WASTATUS_DEDUP_WINDOW='0'" in done.stderr
        assert "WASTATUS_HTTP_TIMEOUT='soon'" in done.stderr
        assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr
        assert not list(tmp_path.glob("wastatus-metrics-*"))  # nothing made before refusing

    @pytest.mark.parametrize("command", [["--help"], ["serve", "--help"], ["rules", "check", "-h"]])
    def test_help_still_works_with_a_bad_setting(self, command):
        """`--help` needs no settings: it answers, so the operator can read how to fix them."""
        result = CliRunner().invoke(main, command, env=BAD)
        assert result.exit_code == 0 and "Usage:" in result.output

    def test_the_command_itself_is_refused(self):
        """Without --help the same command stops before it runs (here in-process, exit 2)."""
        result = CliRunner().invoke(main, ["rules", "check", "rules.yaml"], env=BAD)
        assert result.exit_code == 2 and "WASTATUS_DEDUP_WINDOW='0'" in result.output


class Gunicorn:
    """The Procfile's web command on a free port, one worker; stopped by the test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [*PROCFILE_WEB, "--bind", self.url[7:], "--workers", "1"]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT)
        processes.wait_for_http(self.url, self.process, timeout=30)

    def stop(self) -> None:
        terminate(self.process)


def failures_webhook() -> bytes:
    """A Cloud webhook with two failures: 131043 (resent at once) and 131026 (alerted)."""
    payload = json.loads(load_fixture("cloud/failed_131049.json"))
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses[0]["errors"][0]["code"] = 131026
    resend = json.loads(json.dumps(statuses[0]))
    resend["id"] += "-resend"
    resend["errors"][0]["code"] = 131043
    statuses.append(resend)
    return json.dumps(payload).encode()


def durations_in(rotation: int) -> dict[str, str]:
    """Every duration setting written in a unit: the i-th setting in unit (i + rotation) % 6,
    so the rotations together give each setting each unit. The group wait is 0 (the alert goes
    out within the worker's burst); the others keep their defaults."""
    units = list(UNITS)
    values = {}
    for index, row in enumerate(DURATIONS):
        seconds = 0 if row["variable"] == "WASTATUS_GROUP_WAIT" else row["default"]
        values[row["variable"]] = written(seconds, units[(index + rotation) % len(units)])
    return values


class TestDurationsEndToEnd:
    """A web server and a worker started with every duration setting written in each unit
    store, resend and alert as with the defaults."""

    @pytest.mark.parametrize("rotation", range(len(UNITS)))
    def test_web_server_and_worker(self, rotation, redis, redis_url, receiver, tmp_path):
        """gunicorn stores a failure and answers /readyz and /metrics; a worker drains it,
        resends one failure over HTTP and delivers the other's alert."""
        env = clean_env(tmp_path, REDIS_URL=redis_url, WASTATUS_APP_SECRET=APP_SECRET,
                        WASTATUS_RETRY_URL=receiver.url + "/resend",
                        WASTATUS_ALERT_WEBHOOK_URL=receiver.url + "/alert",
                        **durations_in(rotation))  # fmt: skip
        assert read(env).http_timeout == pytest.approx(10, rel=1e-6)
        web = Gunicorn(env)
        try:
            body = failures_webhook()
            reply = requests.post(web.url + "/webhook", data=body, timeout=10,
                                  headers={"X-Hub-Signature-256": sign(body, APP_SECRET),
                                           "Content-Type": "application/json"})  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert requests.get(web.url + "/readyz", timeout=10).status_code == 200
            assert requests.get(web.url + "/metrics", timeout=10).status_code == 200
        finally:
            web.stop()
        done = subprocess.run([str(BIN / "wastatus"), "worker", "--burst"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        arrived = {request.path: request.json() for request in receiver.wait_for(2)}
        assert arrived["/resend"]["code"] == 131043
        assert arrived["/alert"]["alerts"][0]["code"] == 131026
