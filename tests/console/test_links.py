"""With WASTATUS_PUBLIC_URL, every notification links to its group's console page."""

from __future__ import annotations

from workers.alerting import alertmanager, notifications, text
from workers.settings import read

STATE = {
    "gid": "0123456789abcdef",
    "group_key": "default:phone_number_id=1,code=131049",
    "status": "firing",
    "count": "1",
    "events": "1",
    "first_seen": "1700000000",
    "last_seen": "1700000000",
    "meta": '{"route": "default", "receivers": [], "labels": {"code": 131049}}',
    "sample": '["{\\"code\\": 131049, \\"api\\": \\"cloud\\", \\"message_id\\": \\"m\\"}"]',
}
PAGE = "https://status.example.com/console/groups/0123456789abcdef"


class TestLinks:
    """The alert JSON, the Apprise text and the Alertmanager alert carry the group's page."""

    def test_every_form_carries_the_link(self):
        settings = read({"WASTATUS_PUBLIC_URL": "https://status.example.com/"})
        alert = notifications.payload("n1", STATE, "webhook", settings)
        assert alert["url"] == PAGE
        assert text.body(alert, "en").splitlines()[-1] == PAGE
        posted = alertmanager.postable(alert, settings)
        assert posted["generatorURL"] == PAGE
        assert posted["annotations"]["console"] == PAGE

    def test_no_link_without_the_setting(self):
        settings = read({})
        alert = notifications.payload("n1", STATE, "webhook", settings)
        assert "url" not in alert
        posted = alertmanager.postable(alert, settings)
        assert "generatorURL" not in posted and "console" not in posted["annotations"]
