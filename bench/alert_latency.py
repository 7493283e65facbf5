"""Time from a failed-status webhook received to its alert delivered, with group_wait 0.

Everything real, on loopback: a redis-server (append-only), `wastatus serve` as the
Procfile runs it, one `wastatus worker` process (RQ worker with its scheduler), and an HTTP
receiver configured as `WASTATUS_ALERT_WEBHOOK_URL`. Each sample is one signed Cloud API
webhook carrying one failed status for a phone number of its own (so it opens a new alert
group and fires at once); the clock starts when the POST is sent and stops when the receiver
reads the alert that names its message id. Samples are paced (one at a time, with a gap) so
the figure is the pipeline's latency, not a queue's. Baseline from the same run: the webhook's
own answer time (POST to 200), so the ratio says how many acknowledgements an alert costs.

    .venv/bin/python -m bench.alert_latency [--samples 100] [--gap 0.2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench._payloads import PHONE_NUMBER_ID, cloud_body, signed_headers, status_item
from bench._receiver import Receiver, Recorded
from bench._servers import ROOT, Served
from webhook.cli.redis_server import RedisServer

SECRET = "bench-app-secret"


def arrival(receiver: Receiver, message_id: str, timeout: float) -> float | None:
    """When the first alert naming `message_id` reached the receiver, or None after `timeout`."""

    def names(recorded: Recorded) -> bool:
        alerts = recorded.json().get("alerts", [])
        return any(item.get("message_id") == message_id for item in alerts)

    found = receiver.wait_until(names, timeout)
    return None if found is None else found.arrived


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(samples: int, gap: float, warmup: int, timeout: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="wastatus-alert-bench-"))
    redis_server = RedisServer(work / "redis").start()
    receiver = Receiver().start()
    env = {
        "REDIS_URL": redis_server.url,
        "WASTATUS_APP_SECRET": SECRET,
        "WASTATUS_VERIFY_TOKEN": "bench",
        "WASTATUS_DATA_DIR": str(work),
        "WASTATUS_GROUP_WAIT": "0",
        "WASTATUS_ALERT_WEBHOOK_URL": receiver.url + "/alerts",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "prom"),
    }
    (work / "prom").mkdir()
    for name in ("WASTATUS_RULES", "WASTATUS_RETRY_URL", "WASTATUS_ALERT_URLS"):
        os.environ.pop(name, None)
    web = Served("shipped", "webhook:create_app()", env, workers=2, log=work / "web.log")
    worker = None
    acks: list[float] = []
    alerts: list[float] = []
    lost = 0
    try:
        web.start()
        worker = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "worker"],
            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=(work / "worker.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        session = requests.Session()
        token = f"{int(time.time())}"
        for index in range(warmup + samples):
            message_id = f"wamid.BENCH{token}{index:06d}"
            item = status_item(message_id, "819012345678", "failed", int(time.time()), 131049,
                               "This message was not delivered.")  # fmt: skip
            phone = f"9{token}{index:06d}"
            body = cloud_body([item]).replace(PHONE_NUMBER_ID.encode(), phone.encode())
            headers = signed_headers(body, SECRET)
            sent = time.time()
            answer = session.post(web.url, data=body, headers=headers, timeout=10)
            acked = time.time()
            if answer.status_code != 200:
                raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")
            arrived = arrival(receiver, message_id, timeout)
            if index >= warmup:
                acks.append(acked - sent)
                if arrived is None:
                    lost += 1
                else:
                    alerts.append(arrived - sent)
            time.sleep(gap)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        web.stop()
        receiver.stop()
        redis_server.stop()
    if not alerts:
        raise RuntimeError(f"no alert arrived; see {work}/worker.log")
    result = {
        "samples": samples,
        "lost": lost,
        "ack_ms": {"p50": 1000 * statistics.median(acks), "p99": 1000 * percentile(acks, 0.99)},
        "alert_ms": {"p50": 1000 * statistics.median(alerts),
                     "p99": 1000 * percentile(alerts, 0.99),
                     "max": 1000 * max(alerts)},
        "notifications": len(receiver.requests),
    }  # fmt: skip
    result["ratio_p50"] = result["alert_ms"]["p50"] / result["ack_ms"]["p50"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.2, help="Seconds between samples.")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0, help="Per-sample wait, seconds.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.samples, args.gap, args.warmup, args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        ack, alert = result["ack_ms"], result["alert_ms"]
        print(f"samples {result['samples']} (lost {result['lost']}), "
              f"notifications {result['notifications']}")  # fmt: skip
        print(f"webhook ack (baseline)    p50 {ack['p50']:7.1f} ms   p99 {ack['p99']:7.1f} ms")
        print(f"received → alert at hook  p50 {alert['p50']:7.1f} ms   p99 {alert['p99']:7.1f} ms"
              f"   max {alert['max']:7.1f} ms")  # fmt: skip
        print(f"ratio alert/ack (p50)     {result['ratio_p50']:.1f}×")
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
