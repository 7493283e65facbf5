"""A Python load generator over pre-built request files, for machines without wrk.

Several processes (one per request file), each an asyncio loop that opens a connection per
request, as a gunicorn sync worker closes each one anyway. Flat-out runs keep `connections`
requests in flight; paced runs send on a fixed schedule and measure latency from each
request's slot, so a server that falls behind cannot hide it (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import _requests

MAX_IN_FLIGHT = 2000


@dataclass
class RunResult:
    """What one load run measured; latencies in milliseconds."""

    generator: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    codes: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    sent: int = 0
    sent_failed: int = 0
    wrapped: bool = False
    generator_cpu: float = 0.0
    wall: float = 0.0

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_200(self) -> int:
        return sum(n for code, n in self.codes.items() if code != 200) + self.socket_errors

    def to_dict(self) -> dict:
        return asdict(self) | {"rate": round(self.rate, 1), "non_200": self.non_200}


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` (0..1) of `values` lie (nearest rank); 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def send(host: str, port: int, raw: bytes, timeout: float = 5.0) -> int:
    """Send one raw request on a fresh connection; the response status (0 if none came)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await asyncio.wait_for(reader.readexactly(length), timeout)
        return status
    finally:
        writer.close()


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.codes: Counter = Counter()
        self.errors = 0
        self.sent = 0
        self.sent_failed = 0
        self.wrapped = False


async def _one(host: str, port: int, raw: bytes, started: float, tally: _Tally) -> None:
    try:
        status = await send(host, port, raw)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
        return
    tally.latencies.append((time.perf_counter() - started) * 1000)
    tally.codes[status] += 1


async def _drive(url: str, path: Path, duration: float, connections: int, rate: float | None):
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    records = list(_requests.read_file(path))
    tally = _Tally()
    position = 0

    def take() -> bytes:
        nonlocal position
        if position >= len(records):
            position, tally.wrapped = 0, True
        failed, raw = records[position]
        position += 1
        tally.sent += 1
        tally.sent_failed += failed
        return raw

    begin = time.perf_counter()
    deadline = begin + duration
    if rate:  # paced: one request per slot, latency counted from the slot
        in_flight: set[asyncio.Task] = set()
        n = 0
        while (slot := begin + n / rate) < deadline:
            await asyncio.sleep(max(0.0, slot - time.perf_counter()))
            n += 1
            if len(in_flight) >= MAX_IN_FLIGHT:
                tally.errors += 1
                continue
            task = asyncio.create_task(_one(host, port, take(), slot, tally))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=10)
    else:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await _one(host, port, take(), time.perf_counter(), tally)

        await asyncio.gather(*(loop() for _ in range(connections)))
    return tally, time.perf_counter() - begin


def _process(url, path, duration, connections, rate, pipe) -> None:
    tally, seconds = asyncio.run(_drive(url, path, duration, connections, rate))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pipe.send((tally.__dict__, seconds, usage.ru_utime + usage.ru_stime))
    pipe.close()


def run(
    url: str,
    prefix: Path,
    processes: int,
    connections: int,
    duration: float,
    rate: float | None = None,
) -> RunResult:
    """Load `url` from `processes` processes over `<prefix>.<i>.req`; `rate` paces the total."""
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    per_process_rate = rate / processes if rate else None
    per_process_connections = max(1, connections // processes)
    started = time.monotonic()
    for i in range(processes):
        receive, give = context.Pipe(duplex=False)
        path = Path(f"{prefix}.{i + 1}.req")
        args = (url, path, duration, per_process_connections, per_process_rate, give)
        worker = context.Process(target=_process, args=args, daemon=True)
        worker.start()
        pipes.append(receive)
        workers.append(worker)
    tallies, seconds, cpu = [], [], 0.0
    for receive, worker in zip(pipes, workers, strict=True):
        tally, took, used = receive.recv()
        worker.join()
        tallies.append(tally)
        seconds.append(took)
        cpu += used
    latencies = [value for tally in tallies for value in tally["latencies"]]
    codes: Counter = Counter()
    for tally in tallies:
        codes.update(tally["codes"])
    return RunResult(
        generator="python",
        requests=len(latencies),
        seconds=max(seconds),
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=0.0),
        codes=dict(codes),
        socket_errors=sum(tally["errors"] for tally in tallies),
        sent=sum(tally["sent"] for tally in tallies),
        sent_failed=sum(tally["sent_failed"] for tally in tallies),
        wrapped=any(tally["wrapped"] for tally in tallies),
        generator_cpu=cpu,
        wall=time.monotonic() - started,
    )
