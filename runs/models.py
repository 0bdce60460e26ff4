import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone

from scripts_app.crypto import decrypt, encrypt
from scripts_app.models import Environment, Script, ScriptVersion


class RunStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Lost"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


S = RunStatus
# target status -> the statuses it may be reached from
TRANSITIONS = {
    S.QUEUED: {S.AWAITING_APPROVAL},
    S.REJECTED: {S.AWAITING_APPROVAL},
    S.EXPIRED: {S.AWAITING_APPROVAL},
    S.RUNNING: {S.QUEUED},
    S.SUCCEEDED: {S.RUNNING},
    S.FAILED: {S.RUNNING, S.QUEUED},  # from queued: it could not be queued
    S.TIMED_OUT: {S.RUNNING},
    S.LOST: {S.RUNNING},
    S.CANCELLED: {S.AWAITING_APPROVAL, S.QUEUED, S.RUNNING},
}
FINISHED = {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.LOST, S.REJECTED, S.EXPIRED}


class ImmutableRunFields(Exception):
    pass


class Run(models.Model):
    """One execution of one script version, in one environment, with validated parameters.

    What the run is (version, environment, parameters, requester, dry-run, resumed-from) is fixed at
    creation; status changes only through `transition`, a conditional UPDATE.
    """

    IMMUTABLE = ("script_id", "version_id", "environment_id", "params", "requested_by_id", "dry_run",
                 "resumed_from_id", "timeout_seconds", "reason", "form_snapshot")

    script = models.ForeignKey(Script, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(ScriptVersion, on_delete=models.PROTECT, related_name="runs")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="runs")
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    dry_run = models.BooleanField(default=False)
    form_snapshot = models.JSONField(
        null=True, blank=True, help_text="The script's form when the run was requested (its parameters were "
                                         "validated against it)."
    )
    reason = models.TextField(blank=True, max_length=2000, help_text="Why the requester runs it (approvers read it).")
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="resumed_by")
    timeout_seconds = models.PositiveIntegerField(default=3600,
                                                  help_text="The script's timeout when the run was requested.")

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED,
                              db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.SET_NULL, related_name="+")
    exit_code = models.IntegerField(null=True, blank=True)
    output_bytes = models.BigIntegerField(default=0, help_text="Bytes of output the script wrote.")
    output_truncated = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    status_detail = models.CharField(max_length=500, blank=True)

    # Backfills (scripts using backfill_sdk): the last durable checkpoint, progress, live controls.
    checkpoint = models.JSONField(null=True, blank=True, help_text="Committed before the script goes on.")
    checkpoint_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.BigIntegerField(null=True, blank=True)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_rate = models.FloatField(null=True, blank=True, help_text="Rows per second.")
    paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=500, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1),
                                                                                MaxValueValidator(1_000_000)])
    sleep_seconds = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0),
                                                                         MaxValueValidator(3600)])

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["script", "-id"], name="run_script_recent"),
            models.Index(fields=["environment", "-id"], name="run_env_recent"),
            models.Index(fields=["requested_by", "-id"], name="run_requester_recent"),
        ]

    def __str__(self):
        return f"Run #{self.pk} of {self.script_id} on {self.environment_id}"

    def save(self, *args, **kwargs):
        original = getattr(self, "_original", None)
        if self.pk and original:
            changed = [f for f, v in original.items() if getattr(self, f) != v]
            if changed:
                raise ImmutableRunFields(f"A run's {', '.join(changed)} cannot change after creation.")
        super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, *args, **kwargs):
        instance = super().from_db(*args, **kwargs)
        instance._original = {f: getattr(instance, f) for f in cls.IMMUTABLE if f in instance.__dict__}
        return instance

    @property
    def is_finished(self):
        return self.status in FINISHED

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def transition(self, to, only_from=None, **fields):
        """Move to status `to` if the run is still in a status that may lead there; True if it did.

        One conditional UPDATE, so that two workers, a double click or a late decision cannot both win.
        `only_from` narrows the statuses it may come from.
        """
        allowed = TRANSITIONS[to] if only_from is None else TRANSITIONS[to] & set(only_from)
        if to in FINISHED and "finished_at" not in fields:
            fields["finished_at"] = timezone.now()
        won = Run.objects.filter(pk=self.pk, status__in=allowed).update(status=to, **fields) == 1
        if won:
            self.status = to
            for name, value in fields.items():
                setattr(self, name, value)
        return won


class LogChunk(models.Model):
    """A slice of a run's output (up to ~64 KiB, flushed every ~100 ms); `seq` counts from 1."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_chunk_seq")]

    def __str__(self):
        return f"run {self.run_id} chunk {self.seq}"


class BatchStat(models.Model):
    """One batch of a backfill: rows, seconds, whether it failed (for the run page's chart)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches")
    seq = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()
    seconds = models.FloatField()
    errors = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_batch_per_seq")]

    def __str__(self):
        return f"Batch {self.seq} of run #{self.run_id}"


class RunFile(models.Model):
    """A file given to a run through its form (a CSV for a backfill), kept with it in the database.

    The worker writes it into the run's private directory; the script gets that path as the
    parameter's value. Before a confirmed request has a run, the upload waits here without one.
    """

    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="files")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    field_name = models.CharField(max_length=60)
    filename = models.CharField(max_length=255)
    content = models.BinaryField()
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.filename} ({self.field_name})"

    @classmethod
    def from_upload(cls, user, field_name, upload):
        content = b"".join(upload.chunks())
        return cls(uploaded_by=user, field_name=field_name, filename=upload.name[:255], content=content,
                   size=len(content), sha256=hashlib.sha256(content).hexdigest())

    def describe(self):
        """What the run's parameters record for this file (the script gets its path instead)."""
        return {"file": self.filename, "size": self.size, "sha256": self.sha256}


class NotificationPreference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_preference")
    email_when_my_runs_end = models.BooleanField(default=True)

    def __str__(self):
        return f"Notifications of {self.user}"


class RunWatcher(models.Model):
    """Someone who clicked "Notify me" on a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="watchers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "user"], name="one_watch_per_user")]

    def __str__(self):
        return f"{self.user} watches run #{self.run_id}"


class Webhook(models.Model):
    """A URL told when runs end: of one script, of one environment, or (neither set) of every run."""

    class Kind(models.TextChoices):
        SLACK = "slack", "Slack-compatible (incoming webhook)"
        JSON = "json", "JSON, signed (X-Backfill-Signature: sha256=HMAC of the body)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SLACK)
    url = models.URLField(max_length=500, validators=[URLValidator(schemes=["http", "https"])],
                          help_text="http or https; redirects are not followed.")
    script = models.ForeignKey(Script, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="webhooks")
    only_failures = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    encrypted_secret = models.BinaryField(editable=False, help_text="Signs JSON webhooks (encrypted at rest).")

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.encrypted_secret:
            self.encrypted_secret = encrypt(secrets.token_urlsafe(32))
        super().save(*args, **kwargs)

    @property
    def secret(self):
        """The signing key: the receiver checks X-Backfill-Signature with it."""
        return decrypt(bytes(self.encrypted_secret))


class Delivery(models.Model):
    """One message about one ended run to one recipient, sent and retried by `deliver_notifications`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Given up"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="deliveries")
    email = models.EmailField(blank=True)
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempt_log = models.JSONField(default=list, blank=True, help_text="Each attempt: when, and the answer.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"Run #{self.run_id} to {self.email or self.webhook}"
