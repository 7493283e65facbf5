"""`wastatus rules test` on a webhook body with health changes: their entries and routes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.conftest import FIXTURES
from webhook.cli import main


class TestRulesTestWithHealth:
    def test_health_problems_show_routes_and_benign_events_none(self, tmp_path):
        """A problem names its route (grouped per entity); a benign event is counted only."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("routes:\n  - {matchers: {field: security}, action: drop}\n")
        body = FIXTURES / "cloud" / "health_batch_mixed.json"
        result = CliRunner().invoke(main, ["rules", "test", str(rules), str(body), "--json"])
        assert result.exit_code == 0, result.output
        by_code = {item["code"]: item for item in json.loads(result.output)}
        paused = by_code["message_template_status_update/PAUSED"]
        assert paused["effect"] == "problem"
        assert paused["routes"][0]["group_by"] == ["field", "aspect", "entity_key"]
        assert by_code["security/PIN_RESET_REQUEST"]["routes"][0]["action"] == "drop"
        assert by_code["account_update/PARTNER_ADDED"]["routes"] == []
        assert by_code[132015]["routes"][0]["group_by"] == ["phone_number_id", "code"]
