"""Message fates: alerts drawn from the funnels and the timelines (a tracker failing too often,
messages stuck in `sent`), not from a single webhook."""
