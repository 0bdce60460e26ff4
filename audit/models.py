from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The audit log is append-only: events cannot be updated.")

    def delete(self):
        raise AppendOnlyError("The audit log is append-only: events cannot be deleted.")

    def for_object(self, object_type, object_id):
        return self.filter(object_type=object_type, object_id=str(object_id)).select_related("actor")


class AuditEvent(models.Model):
    """Who did what to which object, when and from where. Written once, never changed."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    # No database constraint: deleting a user must not have to touch (or block on) their history.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                              db_constraint=False, related_name="+", editable=False)
    actor_username = models.CharField(max_length=150, blank=True, editable=False)
    action = models.CharField(max_length=60, db_index=True, editable=False)
    object_type = models.CharField(max_length=60, blank=True, editable=False)
    object_id = models.CharField(max_length=64, blank=True, editable=False)
    object_repr = models.CharField(max_length=300, blank=True, editable=False)
    detail = models.JSONField(default=dict, blank=True, editable=False)
    ip_address = models.GenericIPAddressField(null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_object_recent")]

    def __str__(self):
        who = self.actor_username or "system"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("The audit log is append-only: events cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The audit log is append-only: events cannot be deleted.")
