"""One HTTP POST of a JSON body to a resend endpoint or a receiver, reported as data.

Network failures, timeouts and non-2xx answers come back as a `DeliveryResult` (not
exceptions) so callers decide how to back off; `Retry-After` (seconds or an HTTP date) is
parsed here once for everyone.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests

USER_AGENT = "wastatus/0.1"
_local = threading.local()


@dataclass(frozen=True)
class DeliveryResult:
    """What came of one POST: `ok` for a 2xx; `status` None when no answer came at all."""

    ok: bool
    status: int | None
    retry_after_seconds: float | None = None
    error: str | None = None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _session() -> requests.Session:
    # One session per thread: keep-alive across the posts of one job, no sharing across threads.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> DeliveryResult:
    """POST `body` (JSON bytes, sent as is so signatures stay valid) and report the outcome."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        response = _session().post(
            url, data=body, headers=all_headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as error:
        return DeliveryResult(False, None, None, f"{error.__class__.__name__}: {error}")
    with response:
        ok = 200 <= response.status_code < 300
        retry_after = None if ok else parse_retry_after(response.headers.get("Retry-After"))
        error = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        return DeliveryResult(ok, response.status_code, retry_after, error)


class Session:
    """Kept-alive connections for many POSTs at once from one asyncio loop (aiohttp).

    A sender job posts a batch of resends over one of these, up to `size` at a time: about a
    third of the client CPU per request of urllib3 from threads, measured on loopback
    (bench/resend_throughput.py). `requests`' session above serves the one-at-a-time
    deliveries of notifications. Use it inside a running loop, and `close` it there.
    """

    def __init__(self, size: int, timeout: float) -> None:
        # Imported here: it takes a third of a second, and the web app imports this module.
        import aiohttp

        self._errors = (aiohttp.ClientError, TimeoutError, OSError, ValueError)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=size),
            timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        """POST `body` as is (signatures stay valid) and report the outcome; never raises."""
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                data = await response.read()
                if 200 <= status < 300:
                    return DeliveryResult(True, status)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except self._errors as error:
            return DeliveryResult(False, None, None, f"{error.__class__.__name__}: {error}")
        text = data[:200].decode("utf-8", "replace")
        return DeliveryResult(False, status, retry_after, f"HTTP {status}: {text}")

    async def close(self) -> None:
        await self._session.close()
