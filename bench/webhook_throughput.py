"""Webhook ingest benchmark: our `POST /webhook` against a bare Flask endpoint under gunicorn.

Ours runs as `wastatus serve` runs it (`--server shipped`, the default: the server that
WASTATUS_SERVER picks) or under another WSGI server (`--server`), 2 workers, on loopback, and
stores failures in a real redis-server (append-only). The baseline is a Flask route that does
nothing under gunicorn with 2 sync workers (what a user would pick by default); the same route
also runs on ours' server, unless that is gunicorn's sync worker too, so both ratios show. The
same signed requests, each with fresh ids, go to all, in interleaved rounds (bare, same, ours,
bare, ...) so noise from other work on the machine hits each; medians and ratios are reported.
Then ours is paced at half its peak rate to read p99 latency when it is not saturated.
`--no-keepalive` sends every request on a connection of its own.

    .venv/bin/python -m bench.webhook_throughput [--duration 8] [--rounds 2] [--json]
    .venv/bin/python -m bench.webhook_throughput --server uwsgi --no-keepalive

Needs wrk (Debian package `wrk`) for the most faithful numbers; without it a Python generator
runs instead (it uses more CPU, so the peak rates it shows are lower).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from bench import _requests, _wrk, loadgen
from bench._payloads import Generator
from bench._servers import SERVERS, NullServer, Served, cpu_seconds
from bench.loadgen import RunResult
from webhook.cli.redis_server import RedisServer
from workers import settings
from workers.inbox import intake

SECRET = "bench-app-secret"
SCENARIOS = {"mix": 0.10, "failed": 1.0}
"""Scenario name → share of failed statuses: (a) the realistic mix, (b) all failed."""
BARS = {"mix": 1.2, "failed": 0.8}
"""Scenario name → the least ratio of our rate to the bare endpoint's that passes."""
BASELINE_SERVER = "gunicorn"
"""The bare endpoint runs under gunicorn's sync workers: the server a user picks by default."""
P99_BAR_MS = 50.0
SETTLE_SECONDS = 1.0
"""Pause after each run: requests still in gunicorn's backlog finish before the next starts."""
POOL_RATE = 13000
"""Requests per second the request pool is sized for (more than either server reaches)."""


@dataclass
class Measured:
    scenario: str
    target: str  # "bare" (gunicorn sync), "same" (bare on ours' server), "ours", "ours-paced"
    result: RunResult
    server_cpu: float
    redis_cpu: float
    stored: int | None = None
    rate_asked: float | None = None

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "target": self.target,
            **self.result.to_dict(),
            "server_cpu_seconds": round(self.server_cpu, 2),
            "redis_cpu_seconds": round(self.redis_cpu, 2),
            "stored": self.stored,
            "rate_asked": self.rate_asked,
        }


class Bench:
    """Owns the servers and the request pools of one benchmark run."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.generator = args.generator
        if self.generator == "auto":
            self.generator = "wrk" if _wrk.available() else "python"
        self.parts = args.threads if self.generator == "wrk" else args.processes
        self.redis_server = RedisServer(workdir / "redis")
        self.redis: redis.Redis | None = None
        self.servers: dict[str, Served] = {}
        self.pools: dict[str, Path] = {}
        self.runs: list[Measured] = []

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    def start(self) -> None:
        self.redis_server.start()
        self.redis = redis.Redis.from_url(self.redis_server.url)
        (self.workdir / "prom").mkdir()
        env = {
            "REDIS_URL": self.redis_server.url,
            "WASTATUS_APP_SECRET": SECRET,
            "WASTATUS_DATA_DIR": str(self.workdir / "data"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom"),
        }
        log = self.args.server_log or self.workdir / "server.log"
        extra = tuple(self.args.server_args.split())
        ours, same = self.args.server, self.args.server
        if ours == "shipped":  # the bare route on the server `wastatus serve` picks
            same = "granian-shipped" if self.args.shipped_server == "granian" else "gunicorn"
        workers = self.args.workers
        bare_app, ours_app = "bench.bare_app:create_app()", "webhook:create_app()"
        self.servers["bare"] = Served(BASELINE_SERVER, bare_app, env, workers, log).start()
        if same != BASELINE_SERVER or extra:
            self.servers["same"] = Served(same, bare_app, env, workers, log, extra).start()
        self.servers["ours"] = Served(ours, ours_app, env, workers, log, extra).start()
        size = int(POOL_RATE * self.args.duration)
        for scenario, share in SCENARIOS.items():
            if scenario in self.args.scenarios:
                prefix = self.workdir / scenario
                deliveries = Generator(SECRET, share).deliveries(size)
                close = not self.args.keepalive
                _requests.write_files(prefix, deliveries, self.parts, close=close)
                self.pools[scenario] = prefix
        self.say(
            f"generator {self.generator}, {self.parts} threads/processes, "
            f"{self.args.connections} connections"
            f"{'' if self.args.keepalive else ' (a new one per request)'}, "
            f"pools of {size} signed requests; ours on {ours}"
            + (f" ({self.args.shipped_server})" if ours == "shipped" else "")
        )

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.redis is not None:
            self.redis.close()
        self.redis_server.stop()

    def load(self, url: str, prefix: Path, duration: float, rate: float | None = None):
        module = _wrk if self.generator == "wrk" else loadgen
        return module.run(url, prefix, self.parts, self.args.connections, duration, rate)

    def measure(self, scenario: str, target: str, rate: float | None = None) -> Measured:
        server = self.servers["ours" if target.startswith("ours") else target]
        if target.startswith("ours"):
            self.redis.flushall()  # every id is fresh again: nothing is a duplicate
        server_before = server.cpu_seconds()
        redis_before = cpu_seconds(self.redis_server.process.pid)
        result = self.load(server.url, self.pools[scenario], self.args.duration, rate)
        time.sleep(SETTLE_SECONDS)  # requests still queued in gunicorn's backlog finish here
        measured = Measured(
            scenario,
            target,
            result,
            server.cpu_seconds() - server_before,
            cpu_seconds(self.redis_server.process.pid) - redis_before,
            self.redis.llen(intake.INBOX) if target.startswith("ours") else None,
            rate,
        )
        self.runs.append(measured)
        self.say(
            f"  {scenario:<7} {target:<10} {result.rate:8.0f} req/s  p50 {result.p50_ms:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms  non-200 {result.non_200}"
            + (
                f"  stored {measured.stored}/{result.sent_failed} failed sent"
                if measured.stored is not None
                else ""
            )
        )
        return measured

    def probe_capacity(self) -> RunResult:
        """The generator's rate against a server that does nothing: its own ceiling."""
        null = NullServer().start()
        try:
            prefix = next(iter(self.pools.values()))
            return self.load(null.url, prefix, min(4.0, self.args.duration))
        finally:
            null.stop()

    def warm_up(self) -> None:
        for server in self.servers.values():
            self.load(server.url, next(iter(self.pools.values())), 1.0)


def _median(runs: list[Measured], scenario: str, target: str, key) -> float:
    values = [key(m) for m in runs if m.scenario == scenario and m.target == target]
    return statistics.median(values) if values else 0.0


def summarise(bench: Bench, capacity: RunResult | None) -> dict:
    runs = bench.runs
    scenarios = {}
    bars = []
    for scenario in bench.pools:
        bare = _median(runs, scenario, "bare", lambda m: m.result.rate)
        same = _median(runs, scenario, "same", lambda m: m.result.rate) or bare
        ours = _median(runs, scenario, "ours", lambda m: m.result.rate)
        ratio = ours / bare if bare else 0.0
        paced = [m for m in runs if m.scenario == scenario and m.target == "ours-paced"]
        row = {
            "bare_rate": round(bare, 1),
            "same_rate": round(same, 1),
            "ours_rate": round(ours, 1),
            "ratio": round(ratio, 3),
            "ratio_same_server": round(ours / same, 3) if same else 0.0,
            "bare_p50_ms": _median(runs, scenario, "bare", lambda m: m.result.p50_ms),
            "bare_p99_ms": _median(runs, scenario, "bare", lambda m: m.result.p99_ms),
            "ours_p50_ms": _median(runs, scenario, "ours", lambda m: m.result.p50_ms),
            "ours_p99_ms": _median(runs, scenario, "ours", lambda m: m.result.p99_ms),
            "bare_cpu_ms_per_request": _cpu_per_request(runs, scenario, "bare"),
            "same_cpu_ms_per_request": _cpu_per_request(runs, scenario, "same"),
            "ours_cpu_ms_per_request": _cpu_per_request(runs, scenario, "ours"),
        }
        bars.append(
            {
                "bar": f"{scenario}: ours/bare >= {BARS[scenario]}",
                "value": round(ratio, 3),
                "passed": ratio >= BARS[scenario],
            }
        )
        bars.append(
            {
                "bar": f"{scenario}: p99 at full load < {P99_BAR_MS:g} ms",
                "value": row["ours_p99_ms"],
                "passed": row["ours_p99_ms"] < P99_BAR_MS,
            }
        )
        if paced:
            m = paced[-1]
            row |= {
                "paced_rate_asked": round(m.rate_asked or 0, 1),
                "paced_rate": round(m.result.rate, 1),
                "paced_p50_ms": m.result.p50_ms,
                "paced_p99_ms": m.result.p99_ms,
            }
            bars.append(
                {
                    "bar": f"{scenario}: p99 at half the peak rate < {P99_BAR_MS:g} ms",
                    "value": m.result.p99_ms,
                    "passed": m.result.p99_ms < P99_BAR_MS,
                }
            )
        scenarios[scenario] = row
    problems = []
    for m in runs:
        if m.result.non_200:
            problems.append(f"{m.scenario}/{m.target}: {m.result.non_200} answers were not 200")
        if m.result.wrapped and m.target.startswith("ours"):  # repeats would be duplicates
            problems.append(f"{m.scenario}/{m.target}: the request pool ran out and repeated")
        if m.stored is not None and not (
            m.result.sent_failed - bench.args.connections <= m.stored <= m.result.sent_failed
        ):
            problems.append(
                f"{m.scenario}/{m.target}: {m.stored} events stored for "
                f"{m.result.sent_failed} failed statuses sent"
            )
    return {
        "generator": bench.generator,
        "workers": bench.args.workers,
        "connections": bench.args.connections,
        "duration": bench.args.duration,
        "rounds": bench.args.rounds,
        "server": bench.args.server,
        "shipped_server": bench.args.shipped_server if bench.args.server == "shipped" else None,
        "server_args": bench.args.server_args,
        "keepalive": bench.args.keepalive,
        "generator_capacity": round(capacity.rate, 1) if capacity else None,
        "generator_cpu_share": _generator_share(runs),
        "scenarios": scenarios,
        "bars": bars,
        "problems": problems,
        "runs": [m.to_dict() for m in runs],
    }


def _cpu_per_request(runs: list[Measured], scenario: str, target: str) -> float:
    chosen = [m for m in runs if m.scenario == scenario and m.target == target]
    requests = sum(m.result.requests for m in chosen)
    cpu = sum(m.server_cpu + m.redis_cpu for m in chosen)
    return round(cpu * 1000 / requests, 3) if requests else 0.0


def _generator_share(runs: list[Measured]) -> float | None:
    """The generator's share of the machine's CPU during the bare runs (2 cores = 1.0)."""
    bare = [m for m in runs if m.target == "bare"]
    wall = sum(m.result.seconds for m in bare)
    if not wall:
        return None
    return round(sum(m.result.generator_cpu for m in bare) / (wall * 2), 3)


def show(summary: dict) -> None:
    console = Console()
    server = summary["server"] + (
        f" ({summary['shipped_server']})" if summary["shipped_server"] else ""
    )
    title = (
        f"Webhook ingest: POST /webhook on {server} vs a bare Flask 200 on gunicorn sync, "
        f"{summary['workers']} workers, keep-alive {'on' if summary['keepalive'] else 'off'}"
    )
    table = Table(title=title)
    for column in (
        "scenario",
        "bare req/s",
        "same-server bare req/s",
        "ours req/s",
        "ratio",
        "ratio same server",
        "bare p50/p99 ms",
        "ours p50/p99 ms",
        "paced req/s",
        "paced p50/p99 ms",
    ):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for scenario, row in summary["scenarios"].items():
        table.add_row(
            scenario,
            f"{row['bare_rate']:.0f}",
            f"{row['same_rate']:.0f}",
            f"{row['ours_rate']:.0f}",
            f"{row['ratio']:.2f}×",
            f"{row['ratio_same_server']:.2f}×",
            f"{row['bare_p50_ms']:.1f} / {row['bare_p99_ms']:.1f}",
            f"{row['ours_p50_ms']:.1f} / {row['ours_p99_ms']:.1f}",
            f"{row.get('paced_rate', 0):.0f}",
            f"{row.get('paced_p50_ms', 0):.1f} / {row.get('paced_p99_ms', 0):.1f}",
        )
    console.print(table)
    console.print(
        f"generator {summary['generator']}: capacity {summary['generator_capacity']} req/s "
        f"against a null server; it used {summary['generator_cpu_share']} of the machine's CPU "
        "during the bare runs"
    )
    for scenario, row in summary["scenarios"].items():
        console.print(
            f"server CPU per request ({scenario}): bare {row['bare_cpu_ms_per_request']} ms, "
            f"same-server bare {row['same_cpu_ms_per_request']} ms, "
            f"ours {row['ours_cpu_ms_per_request']} ms (server processes + redis-server)"
        )
    for bar in summary["bars"]:
        verdict = "[green]PASS[/green]" if bar["passed"] else "[red]FAIL[/red]"
        console.print(f"{verdict}  {bar['bar']}: {bar['value']}")
    for problem in summary["problems"]:
        console.print(f"[red]INVALID[/red]  {problem}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--rounds", type=int, default=2, help="bare/ours pairs per scenario (2)")
    parser.add_argument("--connections", type=int, default=16, help="connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--processes", type=int, default=2, help="Python generator processes")
    parser.add_argument("--workers", type=int, default=2, help="server workers (2)")
    parser.add_argument(
        "--server", choices=SERVERS, default="shipped", help="ours' server (wastatus serve)"
    )
    parser.add_argument(
        "--server-args", default="", help="more options for ours' server (both apps), quoted"
    )
    parser.add_argument(
        "--no-keepalive",
        dest="keepalive",
        action="store_false",
        help="a connection per request (Connection: close)",
    )
    parser.add_argument("--server-log", type=Path, help="keep the servers' output in this file")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--scenarios", default="mix,failed", help="mix,failed")
    parser.add_argument("--no-paced", action="store_true", help="skip the half-peak runs")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    args.scenarios = [name for name in args.scenarios.split(",") if name in SCENARIOS]
    args.shipped_server = settings.load().server
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when every bar passes, 1 when one fails, 2 when invalid."""
    args = parse(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wastatus-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start()
            capacity = bench.probe_capacity()
            bench.say(f"generator capacity against a null server: {capacity.rate:.0f} req/s")
            bench.warm_up()
            for scenario in args.scenarios:
                for _ in range(args.rounds):
                    for target in ("bare", "same", "ours"):
                        if target in bench.servers:
                            bench.measure(scenario, target)
            if not args.no_paced:
                for scenario in args.scenarios:
                    peak = _median(bench.runs, scenario, "ours", lambda m: m.result.rate)
                    bench.measure(scenario, "ours-paced", rate=peak / 2)
            summary = summarise(bench, capacity)
        finally:
            bench.stop()
    summary["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show(summary)
    if summary["problems"]:
        return 2
    return 0 if all(bar["passed"] for bar in summary["bars"]) else 1


if __name__ == "__main__":
    sys.exit(main())
