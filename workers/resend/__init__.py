"""Resends: asking the business's sender to send a message again (schedule, sender)."""
