"""Every console page renders from real data, in Japanese and in English, and its forms work."""

from __future__ import annotations

import re

from tests.conftest import Poster, work
from tests.console.conftest import fail
from workers.outcomes import deadletters


def a_bit_of_everything(client, redis) -> str:
    """A failure group, a health problem, a quarantined body and a dead letter; the group id."""
    fail(client, redis, n=12)
    Poster(client).fixture("cloud/health_account_restriction.json")
    Poster(client).with_token(b"not json")
    deadletters.put(redis, "event", {"event_id": "e1", "code": 131000}, "poison")
    work(redis)
    return client.get("/api/v1/groups").json["groups"][0]["id"]


class TestPages:
    """Overview, group, silences, dead letters, quarantine and catalog answer 200 in ja and en."""

    def test_every_page_in_both_languages(self, browser, redis):
        gid = a_bit_of_everything(browser, redis)
        pages = [
            "/console/",
            f"/console/groups/{gid}",
            f"/console/groups/{gid}?page=2&size=10",
            "/console/silences",
            "/console/dead",
            "/console/quarantine",
            "/console/catalog?q=131049",
            "/console/catalog?q=rate+limit",
        ]
        for lang, word in (("ja", "概要"), ("en", "Overview")):
            browser.post("/console/lang", data={"lang": lang, "csrf_token": browser.csrf})
            for path in pages:
                reply = browser.get(path)
                assert reply.status_code == 200, path
                assert word in reply.get_data(as_text=True), (lang, path)
        overview = browser.get("/console/").get_data(as_text=True)
        assert "<svg" in overview and 'http-equiv="refresh"' in overview
        assert "account_update" in overview  # the open health problem
        group = browser.get(f"/console/groups/{gid}?size=10").get_data(as_text=True)
        assert group.count('class="recipient"') == 10  # page 1 of the 12 kept
        assert "Do not resend right away" in group

    def test_unknown_things_are_404_pages(self, browser):
        for path in (
            "/console/groups/nope",
            "/console/dead/nope",
            "/console/quarantine/nope",
            "/console/quarantine/0-1",
        ):
            assert browser.get(path).status_code == 404, path


class TestForms:
    """Silence from a form (preview, then create), expire it; replay all after confirming."""

    def test_silence_preview_create_expire(self, browser, redis):
        fail(browser, redis, n=4)
        form = {
            "csrf_token": browser.csrf,
            "matchers": "code=131049",
            "duration": "2h",
            "comment": "paused",
        }
        preview = browser.post("/console/silences/preview", data=form).get_data(as_text=True)
        assert re.search(r'id="preview-count"><b>4</b>', preview)
        assert browser.post("/console/silences", data=form).status_code == 302
        listed = browser.get("/console/silences").get_data(as_text=True)
        assert 'action="/console/silences/preview"' in listed  # a new silence from this page
        sid = re.search(r"/console/silences/([0-9a-f]+)/expire", listed).group(1)
        browser.post(f"/console/silences/{sid}/expire", data={"csrf_token": browser.csrf})
        assert "/expire" not in browser.get("/console/silences").get_data(as_text=True)

    def test_bad_silence_form(self, browser):
        form = {"csrf_token": browser.csrf, "matchers": "colour=red", "duration": "2h"}
        assert browser.post("/console/silences", data=form).status_code == 400
        form = {"csrf_token": browser.csrf, "matchers": "code=1", "duration": "soon"}
        assert browser.post("/console/silences/preview", data=form).status_code == 400

    def test_replay_all_asks_with_the_count_first(self, browser, redis):
        for i in range(3):
            deadletters.put(redis, "event", {"event_id": f"e{i}", "code": 131000}, "poison")
        asked = browser.post("/console/dead/replay", data={"csrf_token": browser.csrf})
        assert 'id="confirm-count"><b>3</b>' in asked.get_data(as_text=True)
        assert deadletters.count(redis) == 3
        done = browser.post(
            "/console/dead/replay",
            data={"csrf_token": browser.csrf, "count": "3", "confirmed": "1"},
        )
        assert "(3)" in done.get_data(as_text=True) and deadletters.count(redis) == 0
