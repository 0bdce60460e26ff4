"""The run form on a script's page: the run's settings, the script's own form where it has one, and
the confirmation step that says in plain words what will run where with which values."""

from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile

from runs.forms import RunRequestForm
from runs.models import RunFile
from ui_builder.forms import T
from ui_builder.services import params_form, spec_for

UPLOAD_SALT = "runs.pending-upload"
PARAMS_PREFIX = "p"


class RunPage:
    def __init__(self, request, script):
        self.request = request
        self.user = request.user
        self.script = script
        self.spec = spec_for(script)
        data = request.POST if request.method == "POST" else None
        self.settings = RunRequestForm(
            data, user=self.user, script=script, free_params=self.spec is None,
            offers_dry_run=self.spec is None or self.spec["supports_dry_run"],
        )
        self.pending = self.pending_uploads() if data is not None else {}
        self.params = None
        if self.spec is not None:
            self.params = params_form(self.spec, data=data, files=self.files() if data is not None else None,
                                      prefix=PARAMS_PREFIX)

    def files(self):
        """This request's uploads, and those kept from before the confirmation where none replaces them."""
        files = self.request.FILES.copy()
        for name, pending in self.pending.items():
            if f"{PARAMS_PREFIX}-{name}" not in files:
                files[f"{PARAMS_PREFIX}-{name}"] = pending.as_file()
        return files

    @property
    def submitted(self):
        return self.request.method == "POST" and "edit" not in self.request.POST

    def is_valid(self):
        settings_ok = self.settings.is_valid()
        return (self.params is None or self.params.is_valid()) and settings_ok

    @property
    def environment(self):
        return self.settings.cleaned_data["environment"]

    def needs_confirmation(self):
        return self.environment.confirm_runs and self.request.POST.get("confirmed") != "yes"

    def run_arguments(self):
        cleaned = self.settings.cleaned_data
        return {
            "environment": self.environment, "dry_run": cleaned.get("dry_run", False), "reason": cleaned["reason"],
            "params": self.params.params() if self.params else cleaned["params"],
            "files": self.params.files_given() if self.params else None,
        }

    # --- uploads kept across the confirmation step -----------------------------------------------

    def pending_uploads(self):
        """Files uploaded before the confirmation page, by field name (only this user's, not yet used)."""
        pending = {}
        for key, token in self.request.POST.items():
            if not key.startswith("upload-"):
                continue
            try:
                pk = signing.loads(token, salt=UPLOAD_SALT)
            except signing.BadSignature:
                continue
            upload = RunFile.objects.filter(pk=pk, uploaded_by=self.user, run=None).first()
            if upload is not None:
                pending[key.removeprefix("upload-")] = PendingUpload(upload)
        return pending

    def pending_tokens(self):
        return {name: signing.dumps(p.upload.pk, salt=UPLOAD_SALT) for name, p in self.pending.items()}

    def keep_uploads(self):
        """Store this (valid) request's uploads until the confirmation comes back; their hidden tokens."""
        tokens = self.pending_tokens()
        for name, upload in (self.params.files_given() if self.params else {}).items():
            if name in self.pending and upload.name == self.pending[name].upload.filename:
                continue
            kept = RunFile.from_upload(self.user, name, upload)
            kept.save()
            tokens[name] = signing.dumps(kept.pk, salt=UPLOAD_SALT)
        return tokens

    def discard_pending(self):
        RunFile.objects.filter(pk__in=[p.upload.pk for p in self.pending.values()]).delete()

    # --- the confirmation ------------------------------------------------------------------------------

    def carried_fields(self):
        """What the confirmation page posts back: the form as it was filled, files as upload tokens."""
        skip = {"csrfmiddlewaretoken", "confirmed", "edit"}
        return [(key, value) for key, values in self.request.POST.lists() if key not in skip
                and not key.startswith("upload-") for value in values]

    def summary(self):
        """(label, value as people read it) for each parameter that will be passed."""
        if self.params is None:
            params = self.settings.cleaned_data["params"]
            return [(name, readable(value)) for name, value in params.items()]
        rows = []
        for field in self.params.spec["fields"]:
            if field["name"] in self.params.cleaned_data:
                rows.append((field.get("label") or field["name"],
                             readable(self.params.cleaned_data[field["name"]], field)))
        return rows


class PendingUpload:
    def __init__(self, upload):
        self.upload = upload

    def as_file(self):
        return SimpleUploadedFile(self.upload.filename, bytes(self.upload.content))


def readable(value, field=None):
    field_type = field and field["type"]
    if value in (None, "", [], {}):
        return "—"
    if field_type in (T.CHOICE, T.RADIO, T.MULTI_CHOICE):
        labels = {c["value"]: c["label"] for c in field["choices"]}
        values = value if isinstance(value, list) else [value]
        return ", ".join(labels.get(v, v) for v in values)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if hasattr(value, "read"):
        return f"{value.name} ({value.size:,} bytes)"
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:20])
        return shown + (f" … ({len(value)} in all)" if len(value) > 20 else f" ({len(value)})")
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return str(value)
