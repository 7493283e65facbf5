"""`wastatus chaos`: the soak-and-chaos harness of bench/chaos.py, from the console script.

The harness lives in `bench/` (it is a benchmark, not part of the service), so this command
works from a checkout of the repository, where `bench` sits beside `webhook`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _harness():
    try:
        from bench import chaos as harness
    except ImportError:
        checkout = Path(__file__).resolve().parents[2]
        if not (checkout / "bench" / "chaos.py").is_file():
            raise click.ClickException(
                "the chaos harness lives in bench/ of the wastatus repository; run this from a "
                "checkout (pip install -e .), not from an installed wheel"
            ) from None
        sys.path.insert(0, str(checkout))
        from bench import chaos as harness
    return harness


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def chaos(args: tuple[str, ...]) -> None:
    """Break a local wastatus on purpose and check that its ledger balances.

    Runs Redis, gunicorn, workers and fake receivers on 127.0.0.1, drives signed webhooks while
    restarting Redis, killing workers and failing receivers, then checks every failed status
    answered 200 has exactly one outcome. Options as `python -m bench.chaos --help`:
    --duration, --rate, --workers, --plan full|smoke, --drain-timeout, --json, --keep. Exit
    status 0 when the ledger balances, 1 when not.
    """
    sys.exit(_harness().main(list(args)))
