"""A group's page and API: each notification's delivery state, every kept event paged, and a
silence preview counted event by event."""

from __future__ import annotations

import re

from bench._receiver import Reply
from tests.conftest import drive
from tests.console.conftest import fail
from workers.alerting import notifications
from workers.outcomes import deadletters

API = "/api/v1/groups/"


def worker_env(monkeypatch, **settings: str) -> None:
    """The in-process worker's settings (it reads the environment, the app its own)."""
    monkeypatch.setenv("WASTATUS_GROUP_WAIT", "0")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("WASTATUS_RULES", "WASTATUS_ALERT_URLS", "WASTATUS_ALERTMANAGER_URL"):
        monkeypatch.delenv(name, raising=False)


def only_group(client) -> str:
    [group] = client.get("/api/v1/groups").json["groups"]
    return group["id"]


class TestNotifications:
    """A receiver fails one notification and takes the next: the group shows both, newest first."""

    def test_a_dead_then_a_delivered_notification(self, browser, redis, receiver, monkeypatch):
        worker_env(monkeypatch, WASTATUS_ALERT_WEBHOOK_URL=receiver.url + "/hook",
                   WASTATUS_ALERT_ATTEMPTS="1", WASTATUS_GROUP_INTERVAL="1s")  # fmt: skip
        receiver.default = Reply(503)
        fail(browser, redis, n=2)
        drive(redis, lambda: deadletters.count(redis) == 1)
        gid = only_group(browser)
        receiver.default = Reply(200)
        fail(browser, redis, n=1)

        def both() -> list[dict]:
            found = browser.get(API + gid).json["notifications"]
            return len(found) == 2 and found[0]["state"] == "delivered"

        drive(redis, both)
        newest, oldest = browser.get(API + gid).json["notifications"]
        assert (newest["status"], newest["delivered_to"]) == ("update", "webhook")
        assert newest["receivers"] == [
            {"receiver": "webhook", "state": "delivered", "attempts": 1, "last_error": None,
             "next_try": None}
        ]  # fmt: skip
        assert (oldest["status"], oldest["state"], oldest["count"]) == ("firing", "dead", 2)
        [webhook] = oldest["receivers"]
        assert (webhook["state"], webhook["attempts"]) == ("failed", 1)
        assert "503" in webhook["last_error"]

        page = browser.get(f"/console/groups/{gid}").get_data(as_text=True)
        rows = re.findall(r'<tr class="notification".*?</tr>', page, re.S)
        assert len(rows) == 2
        assert (
            "update" in rows[0] and ">delivered<" in rows[0] and "webhook: <b>delivered" in rows[0]
        )
        assert "firing" in rows[1] and ">dead<" in rows[1] and "webhook: <b>failed" in rows[1]
        assert "503" in rows[1]

    def test_an_expired_record_shows_as_such(self, browser, redis, receiver, monkeypatch):
        """A record gone after its retention is listed as expired; the page still renders."""
        worker_env(monkeypatch, WASTATUS_ALERT_WEBHOOK_URL=receiver.url + "/hook")
        fail(browser, redis, n=1)
        gid = only_group(browser)
        drive(redis, lambda: browser.get(API + gid).json["notification"] is not None)
        [sent] = browser.get(API + gid).json["notifications"]
        redis.delete(notifications.record_key(sent["id"]))
        found = browser.get(API + gid).json
        assert found["notifications"] == [{"id": sent["id"], "expired": True}]
        assert found["notification"] is None
        page = browser.get(f"/console/groups/{gid}")
        assert page.status_code == 200
        assert 'class="notification expired"' in page.get_data(as_text=True)


class TestEvents:
    """Events page newest first past the 20 samples, by page or from a fixed point, to the cap."""

    def test_pages_through_kept_events_then_says_older_are_not_kept(
        self, browser, redis, monkeypatch
    ):
        worker_env(monkeypatch, WASTATUS_GROUP_EVENTS="25", WASTATUS_GROUP_WAIT="1h")
        for _ in range(3):
            fail(browser, redis, n=12)
        gid = only_group(browser)
        first = browser.get(API + gid + "?size=10").json
        assert (first["events_total"], first["events_kept"], first["pages"]) == (36, 25, 3)
        assert [e["seq"] for e in first["events"]] == list(range(36, 26, -1))
        assert not first["older_not_kept"]
        seen = first["events"]
        cursor = first["older_before"]
        while cursor:
            listed = browser.get(f"{API}{gid}?size=10&before={cursor}").json
            seen += listed["events"]
            cursor = listed["older_before"]
        assert [e["seq"] for e in seen] == list(range(36, 11, -1))
        assert listed["older_not_kept"] and listed["page"] == 3
        assert len({e["message_id"] for e in seen}) == 25
        assert all(e["recipient_id"].startswith("*") for e in seen)

        page = browser.get(f"/console/groups/{gid}?size=10").get_data(as_text=True)
        assert page.count('<tr class="event">') == 10
        older = re.search(r'id="events-older" href="\?before=(\d+)&amp;size=10"', page)
        assert older and older.group(1) == "27" and 'id="older-not-kept"' not in page
        last = browser.get(f"/console/groups/{gid}?size=10&before=17").get_data(as_text=True)
        assert last.count('<tr class="event">') == 5
        assert 'id="older-not-kept"' in last and 'id="events-older"' not in last
        assert 'id="events-newer" href="?page=2&amp;size=10"' in last

    def test_nonsense_paging_is_the_first_page_or_nothing(self, browser, redis, monkeypatch):
        worker_env(monkeypatch, WASTATUS_GROUP_WAIT="1h")
        fail(browser, redis, n=3)
        gid = only_group(browser)
        for query in ("?page=x", "?page=-4", "?size=0", "?size=-1&page=0", "?before=z"):
            found = browser.get(API + gid + query).json
            assert [e["seq"] for e in found["events"]][:1] == [3], query
        assert browser.get(API + gid + "?before=-5").json["events"] == []
        assert browser.get(API + gid + "?size=100000").json["page_size"] == 200


class TestPreview:
    """A silence on what splits a group counts the group's matching events, not all or none."""

    def preview(self, client, **matchers) -> dict:
        return client.post("/api/v1/silences/preview", json={"matchers": matchers},
                           headers={"X-CSRFToken": client.csrf}).json  # fmt: skip

    def test_a_recipient_prefix_counts_its_own_events(self, browser, redis, monkeypatch):
        worker_env(monkeypatch, WASTATUS_LOG_PII="1", WASTATUS_GROUP_WAIT="1h")
        fail(browser, redis, recipient="819000000001", n=3)
        fail(browser, redis, recipient="818000000001", n=2)
        assert only_group(browser)
        mine = self.preview(browser, code=131049, recipient_prefix="819")
        assert (mine["events"], mine["kept_only"], mine["estimated"]) == (3, False, False)
        assert self.preview(browser, code=131049)["events"] == 5
        assert self.preview(browser, code=131049, recipient_prefix="817")["events"] == 0

    def test_past_the_cap_it_says_only_kept_events_count(self, browser, redis, monkeypatch):
        worker_env(monkeypatch, WASTATUS_LOG_PII="1", WASTATUS_GROUP_EVENTS="20",
                   WASTATUS_GROUP_WAIT="1h")  # fmt: skip
        fail(browser, redis, recipient="819000000001", n=10)
        fail(browser, redis, recipient="818000000001", n=15)
        split = self.preview(browser, code=131049, recipient_prefix="819")
        assert (split["events"], split["kept_only"]) == (5, True)  # 5 of the kept 20
        whole = self.preview(browser, code=131049)
        assert (whole["events"], whole["kept_only"]) == (25, False)  # the group's own code
        form = {"csrf_token": browser.csrf, "matchers": "code=131049\nrecipient_prefix=819",
                "duration": "2h"}  # fmt: skip
        page = browser.post("/console/silences/preview", data=form).get_data(as_text=True)
        assert re.search(r'id="preview-count"><b>5</b>', page)
        assert "only their kept events are counted" in page or "保持しているイベントだけ" in page
