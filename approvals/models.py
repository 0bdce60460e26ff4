from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from runs.models import Run


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ApprovalRequest(models.Model):
    """A run waiting for approval, with the policy that applied when it was requested.

    The policy (how many approvers, which team, when it expires) is copied from the environment at
    request time: changing the environment later does not change a request already made.
    """

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="approval")
    status = models.CharField(max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING,
                              db_index=True)
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    approver_team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"Approval of run #{self.run_id}"

    @property
    def is_pending(self):
        return self.status == ApprovalStatus.PENDING

    def is_past_expiry(self, now=None):
        return (now or timezone.now()) >= self.expires_at


class ApprovalDecision(models.Model):
    """One person's approval or rejection of one request, with their comment."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved = models.BooleanField()
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver")]

    def __str__(self):
        return f"{'Approved' if self.approved else 'Rejected'} by {self.approver} ({self.request})"
