"""The sender job: POSTs due resends in batches, over kept-alive connections, many at a time.

`send_due()` (queue `wastatus-retry`, no arguments) is one RQ job for many resends: one job
per resend capped a worker at RQ's job rate (a fork, RQ's bookkeeping, a fresh HTTP session
each). It claims due items from the resend schedule (`workers.resend.schedule.claim`), POSTs
each as its own signed Standard Webhooks request, `CONCURRENCY` at a time from one asyncio
loop over kept-alive connections (aiohttp), and settles the batch in one transaction. It stops after
`SEND_SECONDS` so alerts and drains get the worker in between (the worker serves its queues
round-robin), and queues its successor while resends are due, or asks RQ's scheduler to wake
one when the next comes due.

Each job starts slowly (one request, then one more in flight for each success, up to
`CONCURRENCY`), so an endpoint that answers 429 or 503 sees one request, not a whole batch:
its Retry-After then holds the endpoint for every resend, and the rest of the batch goes back
unsent, with no attempt used.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque

import aiohttp  # noqa: F401  (the worker imports this module before forking: see runner)
import redis

from workers import logs, settings
from workers.delivery import DeliveryResult, Session
from workers.inbox.enrich import enrich
from workers.jobs import job_connection
from workers.outcomes import deadletters, ledger
from workers.resend import schedule
from workers.resend.schedule import RESEND_SECONDS, RETRIES, Item
from workers.signing import sign_standard_webhook

SEND_SECONDS = 1.0
"""Time box of one sender job; short, so an alert waits at most about this long behind it."""
BATCH = 200
"""Resends claimed at a time (one Lua call, one settling transaction)."""
CONCURRENCY = 16
"""Requests in flight at once per sender job, each on a kept-alive connection."""
EARLY_WAIT_SECONDS = 1.0
"""A sender woken up to this much early (RQ's scheduler keeps whole seconds) waits for the due
resend instead of scheduling another wake-up."""
HOLD_STATUSES = (429, 503)

logger = logging.getLogger("wastatus.resender")


def send_due() -> dict:
    """RQ job: send due resends for up to `SEND_SECONDS`; queue or schedule the next sender."""
    connection = job_connection()
    connection.delete(schedule.SEND_FLAG)
    config = settings.current()
    started = time.monotonic()
    tally: Counter = Counter()
    asyncio.run(Sender(connection, config).run(started + SEND_SECONDS, tally))
    _follow_up(connection)
    done = {name: count for name, count in tally.items() if count}
    return {**done, "seconds": round(time.monotonic() - started, 3)}


def _pause(found: schedule.Claim, deadline: float) -> float | None:
    """How long to wait for the next claim within this job, or None to end it."""
    if found.until is None:
        return None  # nothing waits
    wait_for = found.until - time.time()
    left = deadline - time.monotonic()
    if found.state == "rate" and wait_for < left:
        return max(0.0, wait_for)
    if wait_for <= EARLY_WAIT_SECONDS:
        return max(0.0, wait_for)  # woken a little early by the scheduler's whole seconds
    return None  # a wake-up is scheduled for then


def _follow_up(connection: redis.Redis) -> None:
    """Queue the next sender if resends are due, else schedule one for when the next is."""
    upcoming = schedule.next_due(connection)
    if upcoming is not None:
        schedule.wake(connection, upcoming)


class Sender:
    """Posts claimed items from one asyncio loop over one session and settles the outcomes.

    Redis calls are the synchronous client's, made between batches and while requests are in
    flight; they take milliseconds, the POSTs of a batch many times that."""

    def __init__(self, connection: redis.Redis, config: settings.Settings) -> None:
        self.connection = connection
        self.config = config
        self.window = 1  # slow start: one request first, one more for each success
        self._session: Session | None = None

    async def run(self, deadline: float, tally: Counter) -> None:
        """Claim and send batches until `deadline` or until nothing is due."""
        try:
            while True:
                lease, rate = self.config.drain_lease, self.config.retry_rate
                found = schedule.claim(self.connection, BATCH, lease, rate)
                tally["recovered"] += found.recovered
                if found.items:
                    await self.send(found.items, deadline, tally)
                    if time.monotonic() < deadline:
                        continue
                    break
                pause = _pause(found, deadline)
                if pause is None:
                    break
                await asyncio.sleep(pause)
        finally:
            if self._session is not None:
                await self._session.close()

    async def send(self, items: list[Item], deadline: float, tally: Counter) -> None:
        """POST `items` (slow start, hold on 429/503, stop at `deadline`) and settle them."""
        url = self.config.retry_url
        limit = self.config.drain_max_deliveries
        buried = [item for item in items if item.crashes >= limit]
        items = [item for item in items if item.crashes < limit]
        if not url:
            RETRIES.labels("no_endpoint").inc(len(items))
            self._settle([], [], items, buried, None, tally)
            return
        if self._session is None:
            self._session = Session(CONCURRENCY, self.config.http_timeout)
        session = self._session
        queue = deque(items)
        running: dict[asyncio.Task, Item] = {}
        done: list[tuple[Item, DeliveryResult]] = []
        held_until: float | None = None
        lease_every = max(0.2, self.config.drain_lease / 3)
        renewed = time.monotonic()
        while queue or running:
            while (
                queue
                and len(running) < self.window
                and held_until is None
                and time.monotonic() < deadline
            ):
                item = queue.popleft()
                running[asyncio.ensure_future(self._post(session, url, item))] = item
            if not running:
                break
            finished, _ = await asyncio.wait(
                running, timeout=lease_every, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                item = running.pop(task)
                result = task.result()
                done.append((item, result))
                if result.ok:
                    self.window = min(CONCURRENCY, self.window + 1)
                elif result.status in HOLD_STATUSES:
                    pause = result.retry_after_seconds
                    if pause is None:
                        pause = schedule.HOLD_WITHOUT_RETRY_AFTER
                    held_until = max(held_until or 0.0, time.time() + pause)
                    self.window = 1
            if time.monotonic() - renewed >= lease_every and running:
                schedule.renew(
                    self.connection,
                    [item.id for item in (*running.values(), *queue)],
                    time.time() + self.config.drain_lease,
                )
                renewed = time.monotonic()
        self._settle(done, list(queue), [], buried, held_until, tally)

    async def _post(self, session: Session, url: str, item: Item) -> DeliveryResult:
        body = schedule.request_body(enrich(item.event), item.attempt)
        headers = sign_standard_webhook(
            self.config.retry_secret, f"msg_{item.id}", int(time.time()), body
        )
        headers["wastatus-attempt"] = str(item.attempt)
        started = time.perf_counter()
        result = await session.post(url, body, headers)
        RESEND_SECONDS.observe(time.perf_counter() - started)
        return result

    def _settle(
        self,
        done: list[tuple[Item, DeliveryResult]],
        unsent: list[Item],
        unsendable: list[Item],
        buried: list[Item],
        held_until: float | None,
        tally: Counter,
    ) -> None:
        """Write what came of a batch in one transaction (alerts first: they are idempotent)."""
        now = time.time()
        delivered: list[Item] = []
        later: list[tuple[Item, float]] = []
        alerted: list[tuple[Item, int, str]] = [
            (item, item.attempt - 1, "no resend endpoint configured") for item in unsendable
        ]
        dead: list[tuple[Item, dict, str]] = []
        for item, result in done:
            if result.ok:
                delivered.append(item)
            elif item.attempt >= item.schedule.attempts:
                reason = f"no resend accepted after {item.attempt} attempts; last: {result.error}"
                alerted.append((item, item.attempt, reason))
                record = {"event": item.event, "attempts": item.attempt}
                dead.append((item, {**record, "last_status": result.status}, reason))
            else:
                asked, floor = result.retry_after_seconds, schedule.min_delay(enrich(item.event))
                rand = random.random()
                delay = schedule.next_delay(item.attempt + 1, item.schedule, rand, asked, floor)
                later.append((item, now + max(delay, (held_until or now) - now)))
        for item in buried:
            reason = f"its resend batch died {item.crashes} times before it was settled"
            alerted.append((item, item.attempt - 1, reason))
            record = {"event": item.event, "attempts": item.attempt - 1, "crashes": item.crashes}
            dead.append((item, record, reason))
        schedule.alert_instead(self.connection, alerted)
        with self.connection.pipeline(transaction=True) as pipe:
            ids = [item.event["event_id"] for item in delivered if item.ledger]
            ledger.record(pipe, "resent", ids, now)
            for _, record, reason in dead:
                deadletters.put(pipe, "retry", record, reason)
            for item, due in later:
                schedule.reschedule(pipe, item, due)
            schedule.release(pipe, unsent, held_until or now)
            ended = [*delivered, *unsendable, *(item for item, _, _ in dead)]
            schedule.forget(pipe, [item.id for item in ended])
            pipe.execute()
        if held_until is not None:
            schedule.hold(self.connection, held_until, now)
            RETRIES.labels("held").inc()
            logs.log(logger, "retry.held", logging.WARNING, until=round(held_until, 3))
        RETRIES.labels("delivered").inc(len(delivered))
        RETRIES.labels("rescheduled").inc(len(later))
        RETRIES.labels("exhausted").inc(len(dead) - len(buried))
        tally.update(
            resent=len(delivered),
            rescheduled=len(later),
            exhausted=len(dead) - len(buried),
            returned=len(unsent),
            dead=len(buried),
            alerted=len(unsendable),
        )
