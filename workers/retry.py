"""Old path of the one-job-per-resend job of earlier versions, kept for one release after the
move to `workers.resend.schedule`: RQ jobs queued before an upgrade name `workers.retry.resend`
(resends wait a day and more). Remove in the release after next."""

from workers.resend.schedule import resend

__all__ = ["resend"]
