"""deploy/grafana: every panel's query runs on a real Prometheus scraping a real wastatus.

The stack is real: `wastatus serve` and `wastatus worker` as processes on the test's Redis, a
loopback receiver for alerts and resends, and Debian's `prometheus` scraping /metrics every
second. Signed webhook traffic with failures flows through it; then each panel's PromQL, with
Grafana's variables put in, goes through Prometheus' HTTP API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench._receiver import Receiver, Reply
from tests.conftest import APP_SECRET, ONPREM_TOKEN, load_fixture
from tests.deploy.conftest import DEPLOY, tool
from tests.ops.conftest import Scrape, cloud_status
from tests.processes import terminate
from webhook.cli.redis_server import free_port
from webhook.signature import sign

DASHBOARD = DEPLOY / "grafana" / "wastatus.json"
BIN = Path(sys.executable).parent

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}
"""What Grafana puts in place of its variables (for a 5-minute range, 1 s scrapes)."""


def panels() -> list[dict]:
    """Every panel of the dashboard, those inside collapsed rows included."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def substituted(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(variable, value)
    return expr


class TestDashboardFile:
    """The dashboard is one importable Grafana JSON whose queries use only known variables."""

    def test_panels_have_unique_ids_and_the_datasource_variable(self):
        """Ids are unique; every query panel reads the ${datasource} chosen at import."""
        ids = [panel["id"] for panel in panels()]
        assert len(ids) == len(set(ids))
        for panel in panels():
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert panel["targets"], panel["title"]
        variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
        assert [(v["name"], v["type"], v["query"]) for v in variables] == [
            ("datasource", "datasource", "prometheus")
        ]

    def test_every_variable_in_a_query_is_one_the_test_fills_in(self):
        """No query keeps a `$` once Grafana's variables are put in."""
        for title, expr in queries():
            assert "$" not in substituted(expr), title

    def test_it_covers_what_the_issue_asks_for(self):
        """Failures by code and category, webhook outcomes and latency, backlog, alert and
        resend delivery, and health events and problems each have a panel reading their family."""
        exprs = " ".join(expr for _, expr in queries())
        for family in (
            "wastatus_failures_total", "wastatus_webhook_requests_total",
            "wastatus_webhook_request_seconds_bucket", "wastatus_inbox_events",
            "wastatus_alert_notifications_sent_total", "wastatus_alert_notifications_failed_total",
            "wastatus_retries_total", "wastatus_resends", "wastatus_health_events_total",
            "wastatus_health_problems_open",
        ):  # fmt: skip
            assert family in exprs, family
        assert "by (api, code)" in exprs and "by (category)" in exprs


class Stack:
    """wastatus serve + worker on the test's Redis, and prometheus scraping it; all stopped."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.processes: list[subprocess.Popen] = []
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spawn("web", [str(BIN / "wastatus"), "serve", "--host", "127.0.0.1",
                           "--port", str(self.port), "--workers", "1"], env)  # fmt: skip
        self.wait_for(self.url + "/healthz", "web")
        self.spawn("worker", [str(BIN / "wastatus"), "worker"], env)
        self.prometheus_url = self.start_prometheus(tmp_path / "prometheus")

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes.append(process)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_for(self, url: str, name: str, timeout: float = 60) -> None:
        process = self.processes[-1]
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start:\n{self.log(name)}")
            time.sleep(0.2)

    def start_prometheus(self, directory: Path) -> str:
        directory.mkdir()
        config = directory / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: wastatus\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.port}']}}]\n"
        )
        port = free_port()
        self.spawn("prometheus", [
            tool("prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        ])  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.wait_for(url + "/-/ready", "prometheus")
        return url

    def query(self, expr: str) -> dict:
        reply = requests.get(self.prometheus_url + "/api/v1/query", params={"query": expr},
                             timeout=30)  # fmt: skip
        return reply.json()

    def scraped(self, count: int, timeout: float = 30) -> None:
        """Wait until Prometheus has `count` more scrapes of wastatus, all successful."""
        start = self.scrapes()
        deadline = time.monotonic() + timeout
        while self.scrapes() < start + count:
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus did not scrape wastatus:\n{self.log('prometheus')}")
            time.sleep(0.3)
        result = self.query('up{job="wastatus"}')["data"]["result"]
        assert [sample["value"][1] for sample in result] == ["1"], result

    def scrapes(self) -> int:
        result = self.query('count_over_time(up{job="wastatus"}[10m])')["data"]["result"]
        return int(result[0]["value"][1]) if result else 0

    def post(self, body: dict | bytes, secret: str = APP_SECRET) -> int:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"X-Hub-Signature-256": sign(raw, secret), "Content-Type": "application/json"}
        reply = requests.post(self.url + "/webhook", data=raw, headers=headers, timeout=10)
        return reply.status_code

    def post_onprem(self, body: dict) -> int:
        headers = {"Authorization": f"Bearer {ONPREM_TOKEN}"}
        return requests.post(self.url + "/webhook", json=body, headers=headers,
                             timeout=10).status_code  # fmt: skip

    def metrics(self) -> Scrape:
        return Scrape(requests.get(self.url + "/metrics", timeout=10).text)

    def stop(self) -> None:
        for process in reversed(self.processes):
            terminate(process)


def health_webhook(name: str) -> dict:
    """A health fixture (tests/fixtures/cloud/health_*.json): a problem the workers alert."""
    return json.loads(load_fixture(f"cloud/health_{name}.json"))


def onprem_failure(serial: int) -> dict:
    return {"statuses": [{"id": f"gBGG{serial:06d}", "recipient_id": "818000000001",
            "status": "failed", "timestamp": "1700000000", "errors": [{"code": 470}]}]}  # fmt: skip


def traffic(stack: Stack, wave: int) -> None:
    """One wave of what Meta and the world send: every outcome the dashboard shows."""
    for status in ("sent", "delivered", "read", "sent"):
        assert stack.post(cloud_status(status)) == 200
    for code in (131000, 131026, 131047, 131049, 999999):
        body = cloud_status(code=code)
        assert stack.post(body) == 200
        assert stack.post(body) == 200  # Meta's redelivery: a duplicate
    assert stack.post_onprem(onprem_failure(wave)) == 200
    assert stack.post(health_webhook("account_restriction")) == 200
    assert stack.post(health_webhook("template_paused")) == 200
    invalid = cloud_status("failed")
    invalid["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "exploded"
    assert stack.post(invalid) == 200  # quarantined
    assert stack.post(cloud_status(), secret="not-the-secret") == 401
    assert stack.post(b"x" * 4096) == 413


@pytest.fixture
def stack(redis, redis_url, tmp_path):
    alerts, resends = Receiver().start(), Receiver().start()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WASTATUS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({
        "REDIS_URL": redis_url,
        "WASTATUS_APP_SECRET": APP_SECRET,
        "WASTATUS_ONPREM_TOKEN": ONPREM_TOKEN,
        "WASTATUS_DATA_DIR": str(tmp_path / "data"),
        "WASTATUS_LOG_LEVEL": "WARNING",
        "WASTATUS_MAX_BODY": "2048",
        "WASTATUS_GROUP_WAIT": "0",
        "WASTATUS_ALERT_WEBHOOK_URL": alerts.url + "/alerts",
        "WASTATUS_ALERT_ATTEMPTS": "3",
        "WASTATUS_ALERT_RETRY_BASE": "10ms",
        "WASTATUS_ALERT_RETRY_MAX": "10ms",
        "WASTATUS_RETRY_URL": resends.url + "/resend",
        "WASTATUS_RETRY_ATTEMPTS": "2",
        "WASTATUS_RETRY_BASE_DELAY": "10ms",
        "WASTATUS_RETRY_MAX_DELAY": "10ms",
        "TMPDIR": str(tmp_path),
    })  # fmt: skip
    # The first alert attempt fails (a failing receiver); every resend fails, so they exhaust.
    alerts.script(Reply(500))
    resends.default = Reply(500)
    silence = subprocess.run(
        [str(BIN / "wastatus"), "silence", "add", "--match", "code=131026", "--for", "1h"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert silence.returncode == 0, silence.stderr
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()
        alerts.stop()
        resends.stop()


class TestDashboardQueries:
    """Prometheus evaluates every panel's query without error, with data after real traffic."""

    def test_every_query_on_a_live_stack(self, stack):
        """Two waves of signed traffic (failures, duplicates, invalid, unauthorized, too large,
        health webhooks) through serve and a worker; then each query answers with data."""
        stack.scraped(2)
        traffic(stack, 1)
        stack.scraped(2)
        traffic(stack, 2)
        deadline = time.monotonic() + 90
        while True:  # until the worker has routed, alerted and given up on the resends
            seen = stack.metrics()
            if (
                seen.value("wastatus_inbox_events") == 0
                and seen.value("wastatus_retries_total", outcome="exhausted") >= 2
                and seen.value("wastatus_alert_notifications_failed_total") >= 1
                and seen.value("wastatus_alert_notifications_sent_total") >= 1
                and seen.value("wastatus_events_processed_total") >= 12
            ):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not get through the traffic:\n{stack.log('worker')}")
            time.sleep(0.5)
        stack.scraped(3)

        problems = []
        for title, expr in queries():
            answer = stack.query(substituted(expr))
            if answer.get("status") != "success":
                problems.append(f"{title}: {expr}: {answer.get('error')}")
                continue
            values = [float(sample["value"][1]) for sample in answer["data"]["result"]]
            has_data = any(value == value for value in values)  # NaN is not data
            if not has_data:
                problems.append(f"{title}: {expr}: no data ({answer['data']['result']})")
        assert not problems, "\n".join(problems)
