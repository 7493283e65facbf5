"""The funnels and message pages and their API, from statuses posted to the real webhook,
the web process's funnel flushed and a real worker pass run."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Poster, work
from tests.console.conftest import TOKEN, console_env, csrf_of, log_in
from tests.fates import body, status
from webhook import create_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}
NOW = int(time.time())
RECIPIENT = "818012345678"


def _client(redis_url: str, **overrides: str):
    app = create_app(console_env(redis_url, **overrides))
    app.config["TESTING"] = True
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


@pytest.fixture
def tracked(redis, redis_url):
    """A console app with message tracking on (72h)."""
    return _client(redis_url, WASTATUS_TRACK_MESSAGES="72h")


def _lang(client, lang: str) -> None:
    page = client.get("/console/").get_data(as_text=True)
    client.post("/console/lang", data={"lang": lang, "csrf_token": csrf_of(page)})


def a_spring_sale(client, redis) -> None:
    """Tracker spring-sale: 3 sent (one later delivered and read), 2 failed with 131049 and
    1 with 131026; tracker quiet: 1 sent. Flushed and drained."""
    pricing = {"category": "marketing", "type": "regular"}
    statuses = [
        status(f"wamid.s{i}", "sent", NOW, "spring-sale", pricing=pricing) for i in range(3)
    ]
    statuses += [status(f"wamid.f{i}", "failed", NOW, "spring-sale", 131049, RECIPIENT)
                 for i in range(2)]  # fmt: skip
    statuses += [status("wamid.f9", "failed", NOW, "spring-sale", 131026, RECIPIENT),
                 status("wamid.q", "sent", NOW, "quiet")]  # fmt: skip
    poster = Poster(client)
    assert poster.signed(body(*statuses)).status_code == 200
    later = [status("wamid.s0", "read", NOW + 9, "spring-sale", pricing=pricing),
             status("wamid.s0", "delivered", NOW + 4, "spring-sale", pricing=pricing)]  # fmt: skip
    assert poster.signed(body(*later)).status_code == 200  # read before delivered: out of order
    assert client.application.extensions["wastatus"].funnel.flush()
    work(redis)


class TestFunnelApi:
    """/api/v1/funnels counts by tracker, phone or category; bad arguments are 400."""

    def test_by_tracker_phone_and_category(self, tracked, redis):
        a_spring_sale(tracked, redis)
        reply = tracked.get("/api/v1/funnels", headers=BEARER)
        assert reply.status_code == 200
        found = reply.json
        assert found["by"] == "tracker" and found["since"] == 86400
        sale, quiet = found["rows"]
        assert sale["tracker"] == "spring-sale" and quiet["tracker"] == "quiet"
        assert (sale["sent"], sale["delivered"], sale["read"], sale["failed"]) == (3, 1, 1, 3)
        assert sale["messages"] == 6 and sale["failure_rate"] == 0.5
        assert sale["codes"] == {"131049": 2, "131026": 1}
        assert sale["top_codes"] == "131049×2, 131026×1"
        phones = tracked.get("/api/v1/funnels?by=phone&since=1h", headers=BEARER).json["rows"]
        assert [row["phone"] for row in phones] == ["200000000000002"]
        categories = tracked.get("/api/v1/funnels?by=category", headers=BEARER).json["rows"]
        assert any(row["category"].startswith("marketing/") for row in categories)

    @pytest.mark.parametrize("query", ["by=colour", "since=soon", "since=0s", "since=500d"])
    def test_bad_arguments(self, tracked, query):
        reply = tracked.get(f"/api/v1/funnels?{query}", headers=BEARER)
        assert reply.status_code == 400 and reply.json["error"] == "funnel-invalid"

    def test_failed_recipients_masked(self, tracked, redis):
        a_spring_sale(tracked, redis)
        reply = tracked.get("/api/v1/funnels/failed?tracker=spring-sale", headers=BEARER)
        failed = reply.json["failed"]
        assert len(failed) == 3 and {row["code"] for row in failed} == {131049, 131026}
        assert all(row["recipient_id"] != RECIPIENT for row in failed)
        assert all(row["recipient_id"].endswith(RECIPIENT[-4:]) for row in failed)

    def test_no_session_is_401(self, tracked):
        for path in ("/api/v1/funnels", "/api/v1/messages/wamid.s0", "/api/v1/funnels/failed"):
            reply = tracked.get(path)
            assert reply.status_code == 401 and reply.json["error"] == "console-unauthorized"


class TestMessageApi:
    """/api/v1/messages/<wamid> is the timeline in Meta's order; unknown is 404; off is 409."""

    def test_timeline(self, tracked, redis):
        a_spring_sale(tracked, redis)
        found = tracked.get("/api/v1/messages/wamid.s0", headers=BEARER).json
        assert [s["status"] for s in found["statuses"]] == ["sent", "delivered", "read"]
        assert found["state"] == "read" and found["tracker"] == "spring-sale"
        assert found["pricing"].startswith("marketing/")
        failed = tracked.get("/api/v1/messages/wamid.f9", headers=BEARER).json
        assert failed["state"] == "failed"
        assert failed["statuses"][0]["error"]["explanation"]["ja"]

    def test_unknown(self, tracked):
        reply = tracked.get("/api/v1/messages/wamid.nope", headers=BEARER)
        assert reply.status_code == 404 and reply.json["error"] == "message-unknown"

    def test_tracking_off(self, redis, redis_url):
        reply = _client(redis_url).get("/api/v1/messages/wamid.s0", headers=BEARER)
        assert reply.status_code == 409 and reply.json["error"] == "tracking-off"
        assert "WASTATUS_TRACK_MESSAGES" in reply.json["message"]


class TestPages:
    """The funnels and message pages, behind the login, in Japanese and English."""

    def test_no_session_redirects_to_login(self, tracked):
        for path in ("/console/funnels", "/console/messages/wamid.s0", "/console/messages",
                     "/console/funnels/failed.csv?tracker=spring-sale"):  # fmt: skip
            reply = tracked.get(path)
            assert reply.status_code == 302 and "/console/login" in reply.location, path

    def test_funnels_page(self, tracked, redis):
        a_spring_sale(tracked, redis)
        assert log_in(tracked).status_code == 302
        page = tracked.get("/console/funnels").get_data(as_text=True)
        assert "ファネル" in page and "spring-sale" in page and "50%" in page
        assert 'href="/console/funnels?by=' not in page  # the switch is a form, not links
        assert 'name="by"' in page and 'name="since"' in page
        assert "/console/funnels/failed.csv?tracker=spring-sale" in page
        assert "failed.csv?tracker=quiet" not in page  # nothing failed there
        _lang(tracked, "en")
        page = tracked.get("/console/funnels?by=category&since=3h").get_data(as_text=True)
        assert "Pricing category" in page and "marketing/" in page
        assert tracked.get("/console/funnels?by=colour").status_code == 400

    def test_failed_csv_is_masked_unless_log_pii(self, tracked, redis, redis_url):
        a_spring_sale(tracked, redis)
        assert log_in(tracked).status_code == 302
        reply = tracked.get("/console/funnels/failed.csv?tracker=spring-sale")
        assert reply.status_code == 200 and reply.mimetype == "text/csv"
        lines = reply.get_data(as_text=True).splitlines()
        assert lines[0] == "received_at,message_id,recipient_id,phone_number_id,code,title"
        assert len(lines) == 4 and RECIPIENT not in reply.get_data(as_text=True)
        assert RECIPIENT[-4:] in lines[1]
        open_pii = _client(redis_url, WASTATUS_TRACK_MESSAGES="72h", WASTATUS_LOG_PII="1")
        assert log_in(open_pii).status_code == 302
        shown = open_pii.get("/console/funnels/failed.csv?tracker=spring-sale")
        assert RECIPIENT in shown.get_data(as_text=True)

    def test_message_page_in_both_languages(self, tracked, redis):
        a_spring_sale(tracked, redis)
        assert log_in(tracked).status_code == 302
        page = tracked.get("/console/messages/wamid.f9").get_data(as_text=True)
        assert 'id="message-state" class="bad">failed' in page
        assert "131026" in page and "対処" in page
        _lang(tracked, "en")
        page = tracked.get("/console/messages/wamid.s0").get_data(as_text=True)
        assert page.count('class="timeline-status"') == 3 and "Meta&#39;s time" in page
        assert "marketing/" in page and ">read<" in page
        looked_up = tracked.get("/console/messages?wamid=wamid.s0")
        assert looked_up.status_code == 302 and looked_up.location.endswith("/messages/wamid.s0")
        assert tracked.get("/console/messages/wamid.nope").status_code == 404

    def test_tracking_off_says_how_to_turn_it_on(self, redis, redis_url):
        client = _client(redis_url)
        assert log_in(client).status_code == 302
        reply = client.get("/console/messages/wamid.s0")
        assert reply.status_code == 409 and "WASTATUS_TRACK_MESSAGES" in reply.get_data(True)
        assert "WASTATUS_TRACK_MESSAGES" in client.get("/console/messages").get_data(True)


class TestOddRequests:
    """Odd wamids, trackers and windows get a 4xx or an empty answer, never a 500."""

    @pytest.mark.parametrize("path", [
        "/api/v1/messages/%00", "/api/v1/messages/%ff%fe", "/api/v1/messages/" + "w" * 5000,
        "/api/v1/messages/..%2f..", "/api/v1/funnels/failed?tracker=%00",
        "/api/v1/funnels/failed?tracker=" + "t" * 5000, "/api/v1/funnels?since=%ff",
        "/api/v1/funnels?since=-1h", "/api/v1/funnels?by=&since=", "/api/v1/funnels?since=1e309s",
    ])  # fmt: skip
    def test_odd_api_paths(self, tracked, path):
        assert tracked.get(path, headers=BEARER).status_code in (200, 400, 404), path

    def test_odd_page_paths(self, tracked):
        assert log_in(tracked).status_code == 302
        for path in ("/console/messages/%3Cscript%3E", "/console/funnels?since=%00",
                     "/console/funnels/failed.csv?tracker=%22%0D%0Ax",
                     "/console/messages?wamid=%20"):  # fmt: skip
            reply = tracked.get(path)
            assert reply.status_code in (200, 400, 404), path
            assert b"<script>" not in reply.data
