"""The sent/failed marks against a real Redis: kept for the day plus the alert window, found
across days, bounded per shard (past it, a message is not marked and counts as before)."""

from __future__ import annotations

from collections import Counter

from workers.fates import marks
from workers.fates.shards import DAY, digest, shard

MINUTE = 29_000_000


def _flush(redis, ended, window=3600.0, now=None) -> Counter:
    now = MINUTE * 60.0 + 30 if now is None else now
    with redis.pipeline(transaction=False) as pipe:
        marking = marks.mark(pipe, ended, window, now)
        replies = pipe.execute()
    return marks.counted(marking, replies) if marking else Counter()


def _status(wamid: str, name: str, minute: int = MINUTE, tracker: str = "t") -> tuple:
    return (minute, wamid, name, 131049 if name == "failed" else None, "p1", tracker, "-")


class TestMark:
    """A message counts in `sent_failed` once, when its second kind of status is marked."""

    def test_the_second_status_counts_once_in_its_minute_and_dimensions(self, redis):
        assert _flush(redis, [_status("a", "sent"), _status("a", "sent")]) == Counter()
        both = _flush(redis, [_status("a", "failed", MINUTE + 2, "spring")])
        assert both == Counter({(MINUTE + 2, "sent_failed", None, "p1", "spring", "-"): 1})
        again = [_status("a", "failed", MINUTE + 3), _status("a", "sent", MINUTE + 3)]
        assert _flush(redis, again) == Counter(), "a status delivered again counts nothing"

    def test_only_sent_and_failed_are_marked(self, redis):
        assert marks.mark(redis.pipeline(), [_status("a", "delivered")], 3600.0, 0.0) is None

    def test_kept_until_the_day_ends_plus_the_window(self, redis):
        now = MINUTE * 60.0 + 30
        _flush(redis, [_status("a", "sent")], window=7200.0, now=now)
        (key,) = redis.keys(marks.PREFIX + "*")
        day = int(now // DAY)
        assert key.decode() == f"{marks.PREFIX}{day}:{shard(digest('a'), marks.SHARDS)}"
        assert abs(redis.ttl(key) - ((day + 1) * DAY + 7200 - now)) <= 2

    def test_a_mark_of_yesterday_within_the_window_is_found(self, redis):
        midnight = (MINUTE * 60 // DAY + 1) * DAY
        _flush(redis, [_status("a", "sent")], now=midnight - 600)
        both = _flush(redis, [_status("a", "failed")], now=midnight + 600)
        assert sum(both.values()) == 1
        assert len(redis.keys(marks.PREFIX + "*")) == 1, "the mark stays in yesterday's shard"

    def test_past_the_shard_bound_a_message_is_not_marked(self, redis, monkeypatch):
        monkeypatch.setattr(marks, "SHARDS", 1)
        monkeypatch.setattr(marks, "SHARD_MAX", 2)
        _flush(redis, [_status(name, "sent") for name in ("a", "b", "c")])
        assert redis.hlen(redis.keys(marks.PREFIX + "*")[0]) == 2
        both = _flush(redis, [_status(name, "failed") for name in ("a", "b", "c")])
        assert sum(both.values()) == 2, "the third message counts as before: twice"
