"""Old path of the alert group flush job, kept for one release after the move to
`workers.alerting.groups`: RQ jobs queued before an upgrade name `workers.alerts.flush_group`.
Remove in the release after next."""

from workers.alerting.groups import flush_group

__all__ = ["flush_group"]
