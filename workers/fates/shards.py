"""Compact per-message records for everyone: a message id's digest names its shard and field.

A record kept for every message (or every alerted failure) cannot afford a key, an object or
even the wamid (about 60 bytes) each. The records of `workers.fates.late` and
`workers.fates.marks` keep 6 bytes of the wamid's BLAKE2b digest as a field of one of a day's
small hashes (the shard, chosen by 2 other bytes of the digest), each held to `SHARD_MAX`
fields so that Redis keeps it in its compact encoding (a listpack: about 11 bytes a field).
Two messages share a field with odds of about one in 2⁴⁸ per pair in a shard.
"""

from __future__ import annotations

import hashlib

DAY = 86400

SHARD_MAX = 512
"""Fields one shard keeps: Redis' default limit for its compact hash encoding
(`hash-max-ziplist-entries`, `hash-max-listpack-entries` from Redis 7)."""


def digest(wamid: str) -> bytes:
    """8 bytes standing for a message id: 2 choose its shard, 6 are its field."""
    return hashlib.blake2b(wamid.encode("utf-8", "replace"), digest_size=8).digest()


def shard(found: bytes, shards: int) -> int:
    """The shard (of `shards`) of a digest."""
    return int.from_bytes(found[:2], "big") % shards


def field(found: bytes) -> bytes:
    """The field of a digest in its shard."""
    return found[2:]
