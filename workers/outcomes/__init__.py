"""Outcomes: how each failure ended (ledger), what could not end (dead letters), counts (stats)."""
