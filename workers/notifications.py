"""Old path of the notification delivery job, kept for one release after the move to
`workers.alerting.notifications`: RQ jobs queued before an upgrade name
`workers.notifications.deliver`. Remove in the release after next."""

from workers.alerting.notifications import deliver

__all__ = ["deliver"]
