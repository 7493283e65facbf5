"""CPU per webhook request inside one process: ours against the bare Flask endpoint.

No gunicorn, no load generator: each app's WSGI callable is called with pre-built signed
requests and `time.process_time` is read around the calls, so this isolates what the app does
and is steadier than the HTTP benchmark (it is the tool for checking one hot-path change).
Ours stores failures in a real redis-server (append-only), as in production.

    .venv/bin/python -m bench.webhook_inprocess [--requests 6000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._payloads import Generator

SECRET = "bench-app-secret"
KINDS = {"delivered": 0.0, "failed": 1.0}
"""What each of our runs sends → the share of failed statuses in it."""


def environ(delivery) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhook",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(delivery.body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(delivery.body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_X_HUB_SIGNATURE_256": delivery.headers["X-Hub-Signature-256"],
    }


def cpu_per_request(app, deliveries) -> float:
    """Microseconds of this process's CPU per request; every answer must be a 200."""

    def start_response(status, headers, exc_info=None):
        if not status.startswith("200"):
            raise RuntimeError(f"the app answered {status}")

    requests = [environ(delivery) for delivery in deliveries]
    started = time.process_time()
    for request in requests:
        b"".join(app(request, start_response))
    return (time.process_time() - started) / len(requests) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per app and kind")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="wastatus-inprocess-"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(workdir / "metrics"))
    (workdir / "metrics").mkdir(exist_ok=True)
    from bench.bare_app import create_app as create_bare
    from webhook import create_app
    from webhook.cli.redis_server import RedisServer

    log = (workdir / "requests.log").open("w")  # the request log lines, as gunicorn's would
    sys.stderr, real_stderr = log, sys.stderr
    redis_server = RedisServer(workdir / "redis").start()
    try:
        ours = create_app({"REDIS_URL": redis_server.url, "WASTATUS_APP_SECRET": SECRET})
        bare = create_bare()
        results: dict[str, list[float]] = {"bare": []} | {kind: [] for kind in KINDS}
        for round_number in range(args.rounds):
            for kind, share in KINDS.items():
                deliveries = [Generator(SECRET, share).delivery() for _ in range(args.requests)]
                if round_number == 0:  # warm both apps up on a first slice
                    cpu_per_request(bare, deliveries[:200])
                    cpu_per_request(ours, deliveries[:200])
                    deliveries = deliveries[200:]
                results["bare"].append(cpu_per_request(bare, deliveries))
                results[kind].append(cpu_per_request(ours, deliveries))
                print(f"round {round_number + 1}: {kind} done", file=real_stderr, flush=True)
    finally:
        sys.stderr = real_stderr
        redis_server.stop()
        log.close()

    medians = {name: statistics.median(values) for name, values in results.items()}
    summary = {
        name: {"us_per_request": round(value, 1), "times_bare": round(value / medians["bare"], 2)}
        for name, value in medians.items()
    }
    if args.json:
        print(json.dumps({"medians": summary, "runs": results}, indent=2))
        return 0
    for name, row in summary.items():
        label = "bare Flask" if name == "bare" else f"ours, {name}"
        cost, ratio = row["us_per_request"], row["times_bare"]
        print(f"{label:<16} {cost:7.1f} µs CPU/request  {ratio:.2f}× bare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
