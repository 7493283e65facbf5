"""`wastatus silence` and `wastatus dead`, and alerts end to end with `wastatus worker`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from rq.registry import StartedJobRegistry

from bench._receiver import Reply
from tests.conftest import drive
from tests.workers.alerting import enriched, route
from webhook.cli import main
from workers.alerting import groups, notifications, silences
from workers.inbox import intake
from workers.outcomes import deadletters, ledger
from workers.queues import ALERTS, get_queue


@pytest.fixture
def cli(redis, redis_url, monkeypatch):
    """Run `wastatus …` in-process against the test Redis; returns (exit code, output)."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    for name in ("WASTATUS_RULES", "WASTATUS_ALERT_URLS", "WASTATUS_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return run


class TestSilenceCommand:
    def test_add_list_expire(self, cli, redis):
        """A silence added with --for shows in list --json and is gone from it once expired."""
        code, out = cli("silence", "add", "--match", "code=131049", "--match",
                        "phone_number_id=106540352242922", "--for", "2h", "--comment",
                        "campaign", "--json")  # fmt: skip
        assert code == 0, out
        created = json.loads(out)
        assert created["matchers"] == {"code": [131049], "phone_number_id": ["106540352242922"]}
        assert created["ends_at"] == pytest.approx(time.time() + 7200, abs=30)
        code, out = cli("silence", "list", "--json")
        assert [entry["id"] for entry in json.loads(out)] == [created["id"]]
        code, out = cli("silence", "expire", created["id"])
        assert code == 0 and "expired" in out
        assert json.loads(cli("silence", "list", "--json")[1]) == []

    def test_until_and_comma_lists(self, cli):
        """--until takes ISO-8601 and a comma-separated value means any of them."""
        code, out = cli("silence", "add", "--match", "code=131049,131047",
                        "--until", "2099-01-01T00:00:00Z", "--json")  # fmt: skip
        assert code == 0, out
        assert json.loads(out)["matchers"] == {"code": [131049, 131047]}

    def test_add_for_people_says_until_when_in_utc(self, cli):
        """Without --json, add names the end as a UTC time people read."""
        code, out = cli("silence", "add", "--match", "code=131049",
                        "--until", "2099-01-01T00:00:00Z")  # fmt: skip
        assert code == 0, out
        assert out.rstrip().endswith("until 2099-01-01 00:00:00 UTC")

    def test_bad_input_is_explained(self, cli):
        """An unknown matcher, a missing duration or a bad pair exit non-zero with the reason."""
        code, out = cli("silence", "add", "--match", "colour=red", "--for", "1h")
        assert code == 1 and "unknown matcher" in out
        code, out = cli("silence", "add", "--match", "code=131049")
        assert code == 2 and "--for" in out
        code, out = cli("silence", "add", "--match", "code", "--for", "1h")
        assert code == 2 and "key=value" in out
        code, out = cli("silence", "expire", "nope")
        assert code == 1 and "no silence nope" in out

    def test_list_for_people(self, cli, redis):
        """The table for people shows the matcher and how many events were silenced."""
        silences.add(redis, {"code": 131049}, time.time() + 60, comment="known issue")
        code, out = cli("silence", "list")
        assert code == 0
        assert "code=131049" in out and "known issue" in out


class TestDeadCommand:
    def test_list_json_and_replay_all(self, cli, redis):
        """dead list --json shows the entries; replay --all requeues them and empties the list."""
        event = enriched(131000, 1)[0]
        dead_id = deadletters.put(redis, "retry", {"event": event, "attempts": 5}, "exhausted")
        code, out = cli("dead", "list", "--json")
        [entry] = json.loads(out)
        assert (entry["id"], entry["kind"], entry["reason"]) == (dead_id, "retry", "exhausted")
        code, out = cli("dead", "list")
        assert dead_id in out
        code, out = cli("dead", "replay", "--all")
        assert code == 0 and "requeued to inbox" in out
        assert deadletters.count(redis) == 0
        assert redis.llen(intake.INBOX) == 1

    def test_replay_by_id_of_a_dead_alert(self, cli, redis, receiver, monkeypatch):
        """`dead replay ID` sends an undeliverable alert again once its receiver is back."""
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", receiver.url + "/hook")
        monkeypatch.setenv("WASTATUS_ALERT_ATTEMPTS", "1")
        receiver.default = Reply(500)
        groups.submit(redis, enriched(131049, 2), route())
        drive(redis, lambda: deadletters.count(redis) == 1)
        [dead] = deadletters.entries(redis)
        receiver.default = Reply(200)
        code, out = cli("dead", "replay", dead.id)
        assert code == 0 and "requeued to notification" in out
        drive(redis, lambda: len(receiver.requests) >= 2)
        assert receiver.requests[-1].json()["count"] == 2

    def test_replay_needs_ids_or_all(self, cli):
        """replay without ids or --all is a usage error; an unknown id exits 1."""
        assert cli("dead", "replay")[0] == 2
        code, _ = cli("dead", "replay", "0000000000000-nope")
        assert code == 1


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (RQ's work horse runs in a session of its own)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(part) for part in text.split()]


def first_nid(redis) -> str:
    return redis.zrange(notifications.OUTBOX, 0, 0)[0].decode()


def worker_env(redis_url: str, tmp_path, receiver, **more: str) -> dict[str, str]:
    """The environment of a `wastatus worker` that alerts to `receiver` and nowhere else."""
    env = {**os.environ, "REDIS_URL": redis_url, "WASTATUS_DATA_DIR": str(tmp_path),
           "WASTATUS_ALERT_WEBHOOK_URL": receiver.url + "/alerts", **more}  # fmt: skip
    for name in ("WASTATUS_RULES", "WASTATUS_RETRY_URL", "WASTATUS_ALERT_URLS"):
        env.pop(name, None)
    return env


def start_worker(env: dict[str, str], **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "webhook.cli", "worker"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.Popen(command, env=env, **quiet, **popen)


@contextmanager
def running_worker(env: dict[str, str]):
    """A `wastatus worker` process for the block, stopped as a process manager would."""
    worker = start_worker(env)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(20)


class TestEndToEnd:
    def test_webhook_to_alert_through_a_worker_process(
        self, post, redis, redis_url, receiver, tmp_path
    ):
        """A signed failed-status webhook becomes one alert at the receiver via `wastatus
        worker`, and the ledger says alerted."""
        assert post.fixture("cloud/failed_131049.json").status_code == 200
        with running_worker(worker_env(redis_url, tmp_path, receiver, WASTATUS_GROUP_WAIT="0")):
            [request] = receiver.wait_for(1, timeout=30)
        alert = request.json()
        assert alert["status"] == "firing"
        assert alert["alerts"][0]["code"] == 131049
        assert alert["count"] == 1
        assert ledger.summary(redis)["outcomes"]["alerted"] == 1

    def test_worker_killed_mid_delivery_is_recovered(
        self, redis, redis_url, receiver, tmp_path, monkeypatch
    ):
        """A worker SIGKILLed while its flush job waits on the receiver: RQ's abandoned-job
        cleanup runs the job again, which finishes the delivery; the ledger says alerted."""
        # The first POST hangs; its client is killed first, so it is never answered.
        receiver.script(Reply(200, delay=5), times=1)
        env = worker_env(redis_url, tmp_path, receiver, WASTATUS_HTTP_TIMEOUT="60")
        monkeypatch.setenv("WASTATUS_ALERT_WEBHOOK_URL", env["WASTATUS_ALERT_WEBHOOK_URL"])
        events = enriched(131049, 3)
        groups.submit(redis, events, route(group_wait=0))
        worker = start_worker(env, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not redis.zcard(notifications.OUTBOX) and time.monotonic() < deadline:
                time.sleep(0.05)  # until the flush wrote its notification and started posting
            time.sleep(1.0)
        finally:
            for pid in [*_children(worker.pid), worker.pid]:  # the work horse, then the worker
                os.kill(pid, signal.SIGKILL)
            worker.wait(20)
        assert notifications.get(redis, first_nid(redis))["state"] == "pending"  # cut off
        queue = get_queue(redis, ALERTS)
        # the maintenance a later worker runs, as if the job's timeout had passed
        StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)
        nid = first_nid(redis)
        drive(redis, lambda: notifications.get(redis, nid)["state"] == "delivered", timeout=30)
        # the hung POST was cut off (the receiver never answered it); the rerun's was answered
        assert [request.json()["id"] for request in receiver.requests] == [nid]
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}

    def test_worker_maintenance_recovers_a_lost_flush(self, redis, redis_url, receiver, tmp_path):
        """A group whose flush job was lost long ago is flushed by a worker's maintenance,
        with no new event arriving to notice it."""
        events = enriched(131049, 2)
        the_route = route(group_wait=0.1)
        groups.submit(redis, events, the_route)
        redis.delete(*redis.keys("rq:scheduled:*"))  # the scheduled flush is gone
        gid = groups.group_id(groups.group_label(events[0], the_route))
        redis.zadd(groups.GROUPS, {gid: time.time() - 3600})  # and it was due an hour ago
        with running_worker(worker_env(redis_url, tmp_path, receiver)):
            [request] = receiver.wait_for(1, timeout=30)
        assert request.json()["count"] == 2
        outcomes = ledger.outcomes_of(redis, [event["event_id"] for event in events])
        assert set(outcomes.values()) == {"alerted"}
