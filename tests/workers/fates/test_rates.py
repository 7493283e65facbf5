"""The tracker failure-rate rule, from statuses posted to the real endpoint to a real
receiver through real workers: it fires once over the threshold and resolves under it."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import Poster, app_env, drive
from tests.fates import alerts_to, body, status
from webhook import create_app
from workers.alerting import text
from workers.fates import rates
from workers.outcomes import funnels
from workers.settings import current


@pytest.fixture
def hook(receiver, monkeypatch):
    return alerts_to(receiver, monkeypatch, FUNNEL_ALERT_MIN="10", FUNNEL_ALERT_RATE="20%")


def _funnel_alerts(receiver) -> list[dict]:
    return [request.json() for request in receiver.requests
            if request.json()["alerts"][0].get("kind") == "funnel"]  # fmt: skip


def _post(post, client, statuses) -> None:
    assert post.signed(body(*statuses)).status_code == 200
    assert client.application.extensions["wastatus"].funnel.flush()  # the thread's next flush


class TestFailureRate:
    """A tracker at 27% failed over 11 messages alerts once, and resolves when it falls."""

    def test_fires_once_and_resolves(self, redis, post, client, hook):
        sent = [status(f"s{i}", "sent", tracker="spring-sale") for i in range(8)]
        failed = [status(f"f{i}", "failed", tracker="spring-sale", code=131049) for i in range(2)]
        failed.append(status("f9", "failed", tracker="spring-sale", code=131026))
        _post(post, client, [*sent, *failed, status("q1", "sent", tracker="quiet")])
        assert rates.check(redis) == {"fired": ["spring-sale"], "resolved": []}
        assert rates.check(redis) == {"fired": [], "resolved": []}, "fired only once"
        drive(redis, lambda: len(_funnel_alerts(hook)) == 1)
        (alert,) = _funnel_alerts(hook)
        assert alert["status"] == "firing" and alert["count"] == 1
        item = alert["alerts"][0]
        assert item["code"] == 131049 and item["biz_opaque_callback_data"] == "spring-sale"
        assert item["fate"]["failed"] == 3 and item["fate"]["messages"] == 11
        assert text.title(alert, "en") == (
            "[wastatus] Campaign spring-sale: 27% failed, mostly 131049"
        )
        assert "27% が失敗(主に 131049)" in text.title(alert, "ja")
        assert "3 of 11 messages failed" in text.body(alert, "en")

        _post(post, client, [status(f"t{i}", "sent", tracker="spring-sale") for i in range(10)])
        assert rates.check(redis) == {"fired": [], "resolved": ["spring-sale"]}
        drive(redis, lambda: len(_funnel_alerts(hook)) == 2)
        resolved = _funnel_alerts(hook)[1]
        assert resolved["status"] == "resolved"
        assert (
            text.title(resolved, "en") == "[wastatus] Recovered: campaign spring-sale at 14% failed"
        )
        assert rates.open_problems(redis) == {}

    def test_below_the_minimum_count_nothing_fires(self, redis, post, client, hook):
        failed = [status(f"f{i}", "failed", tracker="tiny", code=131049) for i in range(9)]
        _post(post, client, failed)
        assert current().funnel_alert_min == 10
        assert rates.check(redis) == {"fired": [], "resolved": []}

    def test_a_rate_of_zero_turns_the_rule_off(self, redis, post, client, hook, monkeypatch):
        monkeypatch.setenv("WASTATUS_FUNNEL_ALERT_RATE", "0")
        failed = [status(f"f{i}", "failed", tracker="big", code=131049) for i in range(20)]
        _post(post, client, failed)
        assert rates.check(redis) == {"fired": [], "resolved": []}


class TestEachMessageOnce:
    """With tracking on, a message that reported sent and then failed is one message of the
    rate's denominator, not two: the rate is failed / messages."""

    @pytest.fixture
    def tracked(self, redis, redis_url):
        app = create_app(app_env(redis_url, WASTATUS_TRACK_MESSAGES="72h"))
        yield app.test_client()
        app.extensions["wastatus"].funnel.close()

    def test_sent_then_failed_counts_once(self, redis, tracked, hook):
        post = Poster(tracked)
        _post(post, tracked, [status(f"m{i}", "sent", tracker="once") for i in range(10)])
        failed = [status(f"m{i}", "failed", tracker="once", code=131049) for i in range(2)]
        _post(post, tracked, failed)
        _post(post, tracked, failed[:1])  # Meta's redelivery of a status: still one message
        (row,) = [row for row in funnels.funnel(redis, "tracker", 3600) if row["tracker"] == "once"]
        assert (row["sent"], row["failed"], row["sent_failed"], row["messages"]) == (10, 2, 2, 10)
        assert row["failure_rate"] == 0.2
        assert rates.check(redis) == {"fired": ["once"], "resolved": []}  # 2 of 12 would not

    def test_failed_before_sent_counts_once(self, redis, tracked, hook):
        """Statuses arrive out of order: the late `sent` finds the failure and counts once."""
        post = Poster(tracked)
        _post(post, tracked, [status("x1", "failed", tracker="order", code=131026)])
        _post(
            post,
            tracked,
            [status("x1", "sent", tracker="order"), status("x2", "sent", tracker="order")],
        )
        (row,) = funnels.funnel(redis, "tracker", 3600)
        assert (row["messages"], row["failure_rate"]) == (2, 0.5)


class TestEachMessageOnceUntracked:
    """With tracking off (the default), the flush's marks count a message that reported both
    sent and failed once, in either order, and once when two web apps flush its two halves."""

    def _row(self, redis, tracker: str) -> dict:
        (row,) = [
            row for row in funnels.funnel(redis, "tracker", 3600) if row["tracker"] == tracker
        ]
        return row

    def test_sent_then_failed_counts_once(self, redis, post, client, hook):
        """10 messages sent, 2 of them then failed: 2 of 10 (20%) fires, 2 of 12 would not."""
        assert current().track_messages == 0
        _post(post, client, [status(f"m{i}", "sent", tracker="once") for i in range(10)])
        failed = [status(f"m{i}", "failed", tracker="once", code=131049) for i in range(2)]
        _post(post, client, failed)
        _post(post, client, failed[:1])  # Meta's redelivery of a failure: not counted again
        row = self._row(redis, "once")
        assert (row["sent"], row["failed"], row["sent_failed"]) == (10, 2, 2)
        assert (row["messages"], row["failure_rate"]) == (10, 0.2)
        assert rates.check(redis) == {"fired": ["once"], "resolved": []}

    def test_failed_before_sent_counts_once(self, redis, post, client, hook):
        _post(post, client, [status(f"m{i}", "failed", tracker="late", code=131026)
                             for i in range(2)])  # fmt: skip
        _post(post, client, [status(f"m{i}", "sent", tracker="late") for i in range(10)])
        row = self._row(redis, "late")
        assert (row["sent_failed"], row["messages"], row["failure_rate"]) == (2, 10, 0.2)
        assert rates.check(redis) == {"fired": ["late"], "resolved": []}

    def test_both_in_one_body_count_once(self, redis, post, client, hook):
        statuses = [status("b1", "sent", tracker="one"), status("b1", "failed", tracker="one",
                                                              code=131049)]  # fmt: skip
        _post(post, client, statuses)
        assert (self._row(redis, "one")["messages"], self._row(redis, "one")["failed"]) == (1, 1)

    def test_two_apps_flushing_at_once_count_once(self, redis, redis_url, hook):
        """One app took each message's sent, another its failed; both flush at the same
        moment, each on its own connection: every message counts once."""
        apps = [create_app(app_env(redis_url)) for _ in range(2)]
        try:
            for round_ in range(5):
                ids = [f"r{round_}-{i}" for i in range(400)]
                sent = [status(wamid, "sent", tracker="race") for wamid in ids]
                failed = [status(wamid, "failed", tracker="race", code=131049) for wamid in ids]
                for app, statuses in zip(apps, (sent, failed), strict=True):
                    assert Poster(app.test_client()).signed(body(*statuses)).status_code == 200
                tallies = [app.extensions["wastatus"].funnel for app in apps]
                start = threading.Barrier(2)
                results: list[bool] = []

                def flush(tally, start: threading.Barrier, results: list[bool]) -> None:
                    start.wait()
                    results.append(tally.flush())

                threads = [threading.Thread(target=flush, args=(t, start, results))
                           for t in tallies]  # fmt: skip
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert results == [True, True]
            row = self._row(redis, "race")
            assert (row["sent"], row["failed"], row["sent_failed"]) == (2000, 2000, 2000)
            assert row["messages"] == 2000
        finally:
            for app in apps:
                app.extensions["wastatus"].funnel.close()
