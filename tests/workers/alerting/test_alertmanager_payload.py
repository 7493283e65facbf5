"""The Alertmanager alert of a wastatus alert: labels fit for routing, annotations in the
configured language, times; the receiver kind and its setting. Pure data, no Alertmanager."""

from __future__ import annotations

import json

import pytest

from tests.workers.alerting import enriched, route
from workers.alerting import alertmanager, groups, receivers
from workers.settings import Settings, SettingsError, read

LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"


def notification(events: list[dict], the_route=None, **fields: object) -> dict:
    """The alert JSON of a group of `events`, as `notifications.payload` builds it."""
    the_route = the_route or route()
    items = [groups.alert_item(event) for event in events]
    found = {
        "id": "1795730522525-ac1f5d76",
        "route": the_route.name,
        "group_key": groups.group_label(events[0], the_route, show_pii=False),
        "group_id": groups.group_id(groups.group_label(events[0], the_route)),
        "group_labels": groups.group_labels(events[0], the_route, show_pii=False),
        "status": "firing",
        "retry_exhausted": False,
        "count": len(events),
        "new": len(events),
        "first_seen": "2026-11-26T21:57:39Z",
        "last_seen": "2026-11-26T21:58:02Z",
        "alerts": items,
    }
    found.update(fields)
    return found


class TestLabels:
    """Labels route in Alertmanager: the fixed set, the group's own, all valid and bounded."""

    def test_the_documented_label_set(self):
        """A group of 131049s by phone number and code carries alertname, route, code, api,
        category, severity and phone_number_id, as strings."""
        found = alertmanager.labels(notification(enriched(131049, 3)), Settings())
        assert found == {
            "alertname": "WhatsAppMessageFailed",
            "route": "test",
            "code": "131049",
            "api": "cloud",
            "category": "policy",
            "severity": "warning",
            "phone_number_id": "106540352242922",
        }

    def test_resends_exhausted_have_their_own_alertname(self):
        """A retry-exhausted group is `WhatsAppResendExhausted`, so routing can tell it apart."""
        alert = notification(enriched(131049, 1), retry_exhausted=True)
        assert alertmanager.labels(alert, Settings())["alertname"] == "WhatsAppResendExhausted"

    def test_group_by_labels_and_extra_keys_flow_through(self):
        """The route's group_by fields are labels, and any other key an alert's group labels
        bring (a health event's field, event, template; even alertname) flows through."""
        the_route = route(group_by=("waba_id", "display_phone_number", "code"))
        alert = notification(enriched(131049, 1), the_route)
        alert["group_labels"].update({"field": "message_template_status_update",
                                      "event": "PAUSED", "template": "order_update_v2",
                                      "alertname": "WhatsAppTemplatePaused"})  # fmt: skip
        found = alertmanager.labels(alert, Settings())
        assert found["waba_id"] == "102290129340398"
        assert found["display_phone_number"] == "*******3881"  # masked when it joined
        assert (found["field"], found["event"], found["template"]) == (
            "message_template_status_update", "PAUSED", "order_update_v2")  # fmt: skip
        assert found["alertname"] == "WhatsAppTemplatePaused"

    def test_a_label_the_events_disagree_on_is_left_out(self):
        """Grouped by category only, a group of two codes has no `code` label (a label
        names what the whole alert is about), but keeps what they share."""
        the_route = route(group_by=("category",))
        events = enriched(131026, 1) + enriched(131047, 1)
        found = alertmanager.labels(notification(events, the_route), Settings())
        assert "code" not in found and found["api"] == "cloud"

    def test_names_are_sanitised_and_values_bounded(self):
        """Keys become valid Prometheus label names (not `__`-prefixed), values valid UTF-8
        of at most 256 characters; empty values are left out."""
        alert = notification(enriched(131049, 1))
        alert["group_labels"] = {"9lives": "x", "__name__": "y", "tem-plate.name": "z",
                                 "long": "é" * 1000, "bad": "a\ud800b", "empty": ""}  # fmt: skip
        found = alertmanager.labels(alert, Settings())
        assert {"_9lives", "_name__", "tem_plate_name", "long", "bad"} <= set(found)
        assert "empty" not in found
        assert all(__import__("re").fullmatch(LABEL_NAME, name) for name in found)
        assert not any(name.startswith("__") for name in found)
        assert len(found["long"]) == 256
        json.dumps(found).encode("utf-8")  # no lone surrogate left
        assert found["bad"] == "a?b"

    def test_recipient_numbers_are_never_labels(self):
        """Grouped by recipient, the number is left out of the labels, even with
        WASTATUS_LOG_PII; a `wastatus_group` label keeps two groups two alerts."""
        the_route = route(group_by=("recipient_id", "code"))
        first = notification(enriched(131026, 1, recipient_id="819012345678"), the_route)
        second = notification(enriched(131026, 1, recipient_id="819087655678"), the_route)
        for settings in (Settings(), Settings(log_pii=True)):
            labels = [alertmanager.labels(alert, settings) for alert in (first, second)]
            assert all("recipient_id" not in found for found in labels)
            assert not any("5678" in value for found in labels for value in found.values())
            assert labels[0] != labels[1]
            assert labels[0]["wastatus_group"] == first["group_id"]

    def test_business_numbers_are_masked_unless_pii(self):
        """A business phone number among the labels shows its last 4 digits only, unless
        WASTATUS_LOG_PII is on."""
        alert = notification(enriched(131049, 1), route(group_by=("display_phone_number",)))
        alert["group_labels"] = {"display_phone_number": "15550783881"}
        assert alertmanager.labels(alert, Settings())["display_phone_number"] == "*******3881"
        shown = alertmanager.labels(alert, Settings(log_pii=True))
        assert shown["display_phone_number"] == "15550783881"


class TestAnnotations:
    """Annotations carry the catalog's words in WASTATUS_LANG and a summary with counts."""

    @pytest.mark.parametrize("lang", ["ja", "en"])
    def test_explanation_and_action_in_the_configured_language(self, lang):
        """description and action are the catalog's text in `lang`; summary counts events."""
        events = enriched(131049, 4)
        found = alertmanager.annotations(notification(events), lang)
        entry = events[0]["catalog"]
        assert found["description"] == entry["explanation"][lang]
        assert found["action"] == entry["action"][lang]
        assert found["count"] == "4"
        assert "131049" in found["summary"] and "4" in found["summary"]
        assert ("件" in found["summary"]) == (lang == "ja")
        assert found["group_key"] == "test:phone_number_id=106540352242922,code=131049"

    def test_long_words_are_kept_and_an_alert_without_a_code_still_has_a_summary(self):
        """Annotations are not cut at the label bound; with no code or title (another kind of
        alert), the summary names the group key."""
        alert = notification(enriched(131049, 1))
        alert["alerts"][0]["explanation"] = {"en": "x" * 1000, "ja": "x"}
        assert len(alertmanager.annotations(alert, "en")["description"]) == 1000
        alert["alerts"] = [{}]
        summary = alertmanager.annotations(alert, "en")["summary"]
        assert summary.startswith("test:phone_number_id=106540352242922,code=131049: 1 events")

    def test_recipients_stay_masked_in_the_annotations(self):
        """A group keyed by recipient shows the masked key only."""
        the_route = route(group_by=("recipient_id",))
        alert = notification(enriched(131026, 1, recipient_id="819012345678"), the_route)
        found = alertmanager.annotations(alert, "en")
        assert "819012345678" not in json.dumps(found)
        assert found["group_key"].endswith("5678")


class TestTimes:
    """startsAt is the group's first event; endsAt is explicit and never before it."""

    def test_starts_at_first_seen_and_ends_when_told(self):
        """startsAt is the group's first_seen; endsAt the given time, RFC 3339 with ms."""
        found = alertmanager.postable(notification(enriched(131049, 1)), Settings())
        assert found["startsAt"] == "2026-11-26T21:57:39Z"
        ended = alertmanager.ending(found, 1795730522.5)
        assert ended["endsAt"] == "2026-11-26T22:02:02.500Z"

    def test_ends_never_before_it_starts(self):
        """Alertmanager refuses endsAt before startsAt: the end is moved up to the start."""
        found = alertmanager.postable(notification(enriched(131049, 1)), Settings())
        assert alertmanager.ending(found, 0)["endsAt"] == "2026-11-26T21:57:39.000Z"


class TestReceiverKind:
    """`type: alertmanager` in a rules file, and WASTATUS_ALERTMANAGER_URL, make the receiver."""

    def test_rules_file_receiver_takes_urls(self):
        """`urls` (an HA cluster) are kept as base URLs; `/api/v2/alerts` is cut back."""
        found = receivers.make(
            {
                "name": "am",
                "type": "alertmanager",
                "urls": ["http://am-1:9093/", "http://am-2:9093/api/v2/alerts"],
            }
        )
        assert found.urls == ("http://am-1:9093", "http://am-2:9093")  # fmt: skip

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [({"name": "am", "type": "alertmanager"}, "needs url or urls"),
         ({"name": "am", "type": "alertmanager", "url": "am-1:9093"}, "http:// or https://")],
    )  # fmt: skip
    def test_bad_receivers_are_refused(self, spec, problem):
        """No URL, or one that is not http(s), is a rules-check problem."""
        [found] = receivers.problems([spec])
        assert problem in found

    def test_setting_reads_several_urls(self):
        """Comma-separated URLs, blanks dropped, each cut back to its base."""
        found = read({"WASTATUS_ALERTMANAGER_URL": " http://a:9093 , ,https://b/am/api/v2/alerts"})
        assert found.alertmanager_urls == ("http://a:9093", "https://b/am")

    def test_setting_refuses_a_url_without_scheme_naming_no_password(self):
        """A bad member is refused at start; a password in another is not echoed."""
        with pytest.raises(SettingsError) as caught:
            read({"WASTATUS_ALERTMANAGER_URL": "http://u:hunter2@a:9093,b:9093"})
        assert "WASTATUS_ALERTMANAGER_URL" in caught.value.report()
        assert "hunter2" not in caught.value.report()

    def test_default_chain_puts_alertmanager_first(self):
        """With the setting, Alertmanager leads the default chain; webhook and apprise
        follow as fallbacks; the log only when nothing is set."""
        both = Settings(alertmanager_urls=("http://am:9093",), alert_webhook_url="http://h/x")
        assert receivers.default_chain(both) == ("alertmanager", "webhook")
        assert receivers.default_chain(Settings(alertmanager_urls=("http://am:9093",))) == (
            "alertmanager",
        )
        assert receivers.default_chain(Settings()) == ("log",)
