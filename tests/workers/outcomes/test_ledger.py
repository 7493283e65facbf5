"""The ledger of event outcomes and the hourly failure stats, on a real Redis."""

from __future__ import annotations

import pytest

from workers.outcomes import ledger, stats

DAY = 86400.0
NOW = 1_700_000_000.0


class TestLedgerRecord:
    def test_counts_each_event_once_per_outcome(self, redis):
        """Recording events adds them to the day's hash and to the outcome's count."""
        ledger.record(redis, "resent", ["a", "b"], now=NOW)
        ledger.record(redis, "dropped", ["c"], now=NOW)
        assert redis.hget(ledger.day_key(NOW), "a") == b"resent"
        summary = ledger.summary(redis)
        assert summary["outcomes"]["resent"] == 2 and summary["outcomes"]["dropped"] == 1
        assert summary["total"] == 3 and summary["conflicts"] == 0

    def test_same_outcome_again_is_a_no_op(self, redis):
        """A replayed batch recording the same outcome neither counts twice nor conflicts."""
        ledger.record(redis, "alerted", ["a"], now=NOW)
        ledger.record(redis, "alerted", ["a"], now=NOW + 10)
        summary = ledger.summary(redis)
        assert summary["total"] == 1 and summary["conflicts"] == 0

    def test_a_different_outcome_is_a_conflict(self, redis):
        """An event recorded with a second, different outcome counts a conflict, keeps its first."""
        ledger.record(redis, "resent", ["a"], now=NOW)
        ledger.record(redis, "alerted", ["a"], now=NOW)
        summary = ledger.summary(redis)
        assert summary["conflicts"] == 1
        assert summary["conflict_samples"] == ["a resent alerted"]
        assert ledger.outcomes_of(redis, ["a"], now=NOW) == {"a": "resent"}

    def test_conflict_found_across_midnight(self, redis):
        """An outcome recorded yesterday still conflicts with a different one today."""
        ledger.record(redis, "dropped", ["a"], now=NOW)
        ledger.record(redis, "dead", ["a"], now=NOW + DAY)
        assert ledger.summary(redis)["conflicts"] == 1

    def test_works_inside_a_transaction(self, redis):
        """On a MULTI/EXEC pipeline the write lands only when the pipeline executes."""
        with redis.pipeline(transaction=True) as pipe:
            ledger.record(pipe, "dropped", ["a"], now=NOW)
            assert ledger.summary(redis)["total"] == 0
            pipe.execute()
        assert ledger.summary(redis)["total"] == 1

    def test_day_hash_expires(self, redis):
        """Each day's hash has a TTL so the ledger costs memory only over the dedup window."""
        ledger.record(redis, "dropped", ["a"], now=NOW)
        assert 0 < redis.ttl(ledger.day_key(NOW)) <= ledger.KEEP_SECONDS

    def test_unknown_outcome_is_refused(self, redis):
        """A misspelt outcome is a programming error, raised at once."""
        with pytest.raises(ValueError):
            ledger.record(redis, "sent", ["a"])

    def test_outcomes_of_unknown_event_is_none(self, redis):
        """An event never recorded has no outcome."""
        assert ledger.outcomes_of(redis, ["nope"]) == {"nope": None}


class TestLedgerIds:
    """Event ids are kept as their 16 bytes; ids a previous version kept as text still count."""

    ID = "0123456789abcdef0123456789abcdef"

    def test_a_hex_id_is_kept_as_16_bytes(self, redis):
        ledger.record(redis, "alerted", [self.ID], now=NOW)
        assert redis.hkeys(ledger.day_key(NOW)) == [bytes.fromhex(self.ID)]
        assert [ledger.shown(field) for field in redis.hkeys(ledger.day_key(NOW))] == [self.ID]
        assert ledger.outcomes_of(redis, [self.ID], now=NOW) == {self.ID: "alerted"}

    def test_an_id_kept_as_text_is_not_counted_again(self, redis):
        """Recorded before the upgrade (today or yesterday), recorded again after: one count,
        a different outcome a conflict that names the id."""
        redis.hset(ledger.day_key(NOW - DAY), self.ID, "alerted")
        redis.hset(ledger.day_key(NOW), "f" * 32, "alerted")
        ledger.record(redis, "alerted", [self.ID, "f" * 32], now=NOW)
        assert ledger.summary(redis)["total"] == 0
        ledger.record(redis, "dropped", [self.ID], now=NOW)
        assert ledger.summary(redis)["conflict_samples"] == [f"{self.ID} alerted dropped"]
        assert ledger.outcomes_of(redis, [self.ID], now=NOW) == {self.ID: "alerted"}

    def test_reopen_forgets_both_forms(self, redis):
        redis.hset(ledger.day_key(NOW), self.ID, "alerted")
        redis.hset(ledger.COUNTS, "alerted", 1)
        ledger.reopen(redis, [self.ID], now=NOW)
        assert ledger.outcomes_of(redis, [self.ID], now=NOW) == {self.ID: None}
        ledger.record(redis, "alerted", [self.ID], now=NOW)
        assert ledger.summary(redis)["outcomes"]["alerted"] == 1


class TestFailureStats:
    def test_counts_by_api_and_code_over_the_window(self, redis):
        """Failures recorded this hour and last hour are summed per api and code, most first."""
        events = [{"api": "cloud", "code": 131049}] * 3 + [{"api": "on_premises", "code": 470}]
        stats.record(redis, events, now=NOW)
        stats.record(redis, [{"api": "cloud", "code": 131049}], now=NOW - 3600)
        assert stats.failures_since(redis, 3600, now=NOW) == [
            {"api": "cloud", "code": 131049, "count": 4},
            {"api": "on_premises", "code": 470, "count": 1},
        ]

    def test_old_hours_are_outside_the_window(self, redis):
        """An hour before the window is not counted."""
        stats.record(redis, [{"api": "cloud", "code": 1}], now=NOW - 3 * 3600)
        assert stats.failures_since(redis, 3600, now=NOW) == []

    def test_event_without_code(self, redis):
        """A failure with no error code is counted with code None."""
        stats.record(redis, [{"api": "cloud", "code": None}], now=NOW)
        assert stats.failures_since(redis, 60, now=NOW) == [
            {"api": "cloud", "code": None, "count": 1}
        ]

    def test_hour_keys_expire(self, redis):
        """Stats keys expire after two days."""
        stats.record(redis, [{"api": "cloud", "code": 1}], now=NOW)
        assert 0 < redis.ttl(stats.hour_key(NOW)) <= stats.KEEP_SECONDS
