"""Old path of the sender job, kept for one release after the move to `workers.resend.sender`:
RQ jobs queued before an upgrade name `workers.resender.send_due`. Remove in the release after
next."""

from workers.resend.sender import send_due

__all__ = ["send_due"]
