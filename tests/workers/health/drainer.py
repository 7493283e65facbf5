"""A drain job run in a process of its own, for the tests of health events on bad days.

`python -m tests.workers.health.drainer [kill-point] [--together N]` runs
`workers.drain.drain_inbox` (the RQ job's function, outside RQ: its Redis is REDIS_URL) until
the inbox is empty. With a kill
point it SIGKILLs itself there, as a crash of the machine would:

- `after-process`: `tracker.process` returned (states, groups, a recovery's close written) and
  the drain job's final MULTI has not run;
- `after-take-N`: the N-th health event of the run was taken, the rest of its batch not;
- `after-exec`: the first health event's MULTI was executed, and nothing that follows it
  (queuing its alert group's flush) ran.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from workers import drain
from workers.health import tracker
from workers.inbox import intake


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    """Make the process kill itself at `point`."""
    if point == "after-process":
        process = tracker.process

        def process_then_die(*args, **kwargs):
            process(*args, **kwargs)
            _die()

        tracker.process = process_then_die
    elif point.startswith("after-take-"):
        take, left = tracker.take, [int(point.removeprefix("after-take-"))]

        def take_then_die(*args, **kwargs):
            outcome = take(*args, **kwargs)
            left[0] -= 1
            if left[0] == 0:
                _die()
            return outcome

        tracker.take = take_then_die
    elif point == "after-exec":
        stage = tracker._stage

        def stage_then_die(*args, **kwargs):
            stage(*args, **kwargs)
            return lambda replies: _die()  # what `take` calls once EXEC returned

        tracker._stage = stage_then_die
    elif point:
        raise SystemExit(f"unknown kill point {point!r}")


READY = "tests:drainers:ready"
"""With `--together N`, each drainer counts itself here and starts once N have."""


def main() -> None:
    args = sys.argv[1:]
    together = int(args[args.index("--together") + 1]) if "--together" in args else 0
    arm(args[0] if args and not args[0].startswith("--") else "")
    connection = drain.job_connection()
    if together:
        connection.incr(READY)
        while int(connection.get(READY) or 0) < together:
            time.sleep(0.001)
    batches = 0
    while connection.llen(intake.INBOX):
        batches += drain.drain_inbox().get("batches", 0)
    print(f"batches {batches}")


if __name__ == "__main__":
    main()
