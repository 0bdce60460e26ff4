import hashlib
import secrets as pysecrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from scripts_app.crypto import decrypt, encrypt

ENV_VAR_NAME = RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "Use upper-case letters, digits and underscores.")


class Environment(models.Model):
    """Where scripts run: its own RQ queue (so its workers can live in its network) and secrets."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    queue_name = models.SlugField(
        max_length=50, unique=True, help_text="RQ queue that this environment's workers listen on."
    )
    python_path = models.CharField(
        max_length=255,
        blank=True,
        help_text="Interpreter for Python scripts on this environment's workers; blank: the worker's own.",
    )
    bash_path = models.CharField(max_length=255, default="/bin/bash")
    description = models.TextField(blank=True)

    confirm_runs = models.BooleanField(
        default=False, help_text="Production: the run form asks people to confirm, in plain words, what will "
                                 "run here with which values before it starts.",
    )
    approval_required = models.BooleanField(
        default=False, help_text="Runs here wait for approval by someone other than the requester."
    )
    approvals_needed = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(50)], help_text="Distinct approvers a run needs."
    )
    approver_team = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Only members of this team may approve. Blank: anyone who may run the script here.",
    )
    approval_expiry_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 366)],
        help_text="A request nobody decided on in this time (at most a year) expires, and its run never starts.",
    )

    class Meta:
        ordering = ["name"]
        permissions = [("use_environment", "Can run scripts in this environment")]

    def __str__(self):
        return self.name


class Script(models.Model):
    class Language(models.TextChoices):
        PYTHON = "python", "Python"
        BASH = "bash", "Bash"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    language = models.CharField(max_length=10, choices=Language.choices, default=Language.PYTHON)
    owner_team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    allowed_environments = models.ManyToManyField(Environment, related_name="scripts", blank=True)
    timeout_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)])
    sync_path = models.CharField(
        max_length=500, blank=True, editable=False,
        help_text="The file it is synced from (manage.py sync_scripts), if any.",
    )
    notify_owner_team_on_failure = models.BooleanField(
        default=False, help_text="Email the owner team when a run of it fails, times out or is lost.")
    one_at_a_time = models.BooleanField(
        default=False, help_text="At most one run of it per environment at a time (waiting, queued or running): "
                                 "another request is refused with a clear message.",
    )
    always_require_approval = models.BooleanField(
        default=False,
        help_text="Every run needs approval, in any environment (with that environment's approvers, "
                  "number and expiry).",
    )
    restricted = models.BooleanField(
        default=False,
        help_text="Only people and teams given this script by name may see, run or edit it; "
                  "permissions on all scripts do not apply.",
    )
    current_version = models.ForeignKey(
        "ScriptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("run_script", "Can run script")]

    def __str__(self):
        return self.name

    def requires_approval_in(self, environment):
        return self.always_require_approval or environment.approval_required

    def save_source(self, source, author=None, message=""):
        """Snapshot `source` as a new version when it differs from the current one; return the current."""
        digest = hashlib.sha256(source.encode()).hexdigest()
        if self.current_version and self.current_version.sha256 == digest:
            return self.current_version
        number = (self.versions.aggregate(m=models.Max("number"))["m"] or 0) + 1
        version = ScriptVersion.objects.create(
            script=self, number=number, source=source, sha256=digest, author=author, message=message
        )
        self.current_version = version
        self.save(update_fields=["current_version", "updated_at"])
        return version


class ScriptVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Script versions are immutable.")


class ScriptVersion(models.Model):
    """An immutable snapshot of a script's source; runs point at the exact version they executed."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    sha256 = models.CharField(max_length=64)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScriptVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["script", "number"], name="unique_script_version")]

    def __str__(self):
        return f"{self.script} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Script versions are immutable.")
        super().save(*args, **kwargs)


class Secret(models.Model):
    """A value injected into script processes of one environment; encrypted at rest, never shown."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100, validators=[ENV_VAR_NAME], help_text="Environment variable name.")
    encrypted_value = models.BinaryField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="unique_secret_name")]

    def __str__(self):
        return f"{self.environment.slug}:{self.name}"

    def set_value(self, value):
        self.encrypted_value = encrypt(value)

    def get_value(self):
        return decrypt(bytes(self.encrypted_value))


class ApiTokenQuerySet(models.QuerySet):
    def for_key(self, key):
        return self.select_related("user").filter(key_hash=ApiToken.hash_key(key), user__is_active=True).first()


class ApiToken(models.Model):
    """A personal API token. Only its hash is stored; the key is shown once, when created."""

    PREFIX = "bf_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self):
        return f"{self.user} {self.key_prefix}…"

    @staticmethod
    def hash_key(key):
        return hashlib.sha256(key.encode()).hexdigest()

    def assign_new_key(self):
        """Give this token a fresh key and return it; only its hash is kept."""
        key = self.PREFIX + pysecrets.token_urlsafe(32)
        self.key_hash, self.key_prefix = self.hash_key(key), key[:10]
        return key

    @classmethod
    def issue(cls, user, name=""):
        """Create a token for `user`; return (token, key). The key cannot be recovered later."""
        token = cls(user=user, name=name)
        key = token.assign_new_key()
        token.save()
        return token, key
