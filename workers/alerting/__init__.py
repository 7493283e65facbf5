"""Alerting: groups of failures (groups) become notifications delivered to receivers."""
