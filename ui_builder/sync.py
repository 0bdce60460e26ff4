"""Scripts kept in git: read a folder of scripts, with their settings and forms, into Backfill.

A script is a `*.py` (Python) or `*.sh` (Bash) file anywhere under the folder; beside it, an
optional `<same name>.backfill.json` holds its settings (docs/sync.md). Its slug is its file name
without the extension. New scripts are created; a changed source becomes a new version (its message
names the git commit where the folder is a checkout); settings and forms are brought up to date;
nothing is ever deleted: scripts synced from the folder whose file is gone are reported. Each script
syncs on its own: a bad file is reported, with its name and the reason, and the rest still syncs.

It lives in ui_builder because a script's settings include its form.
"""

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils.text import slugify

from scripts_app.models import Environment, Script
from ui_builder.models import FormDefinition, FormField
from ui_builder.services import export_definition, import_definition
from ui_builder.spec import field_kwargs, field_spec

LANGUAGES = {".py": Script.Language.PYTHON, ".sh": Script.Language.BASH}
SETTINGS_SUFFIX = ".backfill.json"
SETTINGS_KEYS = {"name", "description", "owner_team", "environments", "timeout_seconds", "one_at_a_time",
                 "restricted", "always_require_approval", "form"}
FLAGS = ("one_at_a_time", "restricted", "always_require_approval")


class SyncError(Exception):
    """What is wrong with one script's files, in words for the person who wrote them."""


@dataclass
class SyncReport:
    folder: str
    commit: str = ""
    created: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    gone: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (file, reason)

    def lines(self):
        where = f"{self.folder}" + (f" (git {self.commit})" if self.commit else "")
        lines = [f"Synced {where}: {len(self.created)} new, {len(self.changed)} changed, "
                 f"{len(self.unchanged)} unchanged, {len(self.gone)} gone, {len(self.errors)} with errors."]
        lines += [f"  new: {s}" for s in self.created] + [f"  changed: {s}" for s in self.changed]
        lines += [f"  gone (kept here, its file is no longer in the folder): {s}" for s in self.gone]
        lines += [f"  error in {name}: {reason}" for name, reason in self.errors]
        return lines


def git_commit(folder):
    """The checkout's commit (short), or "" where the folder is not in a git checkout."""
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""  # no git here: the versions say where they came from without a commit
    return result.stdout.strip() if result.returncode == 0 else ""


def sync_folder(folder, author=None):
    """Sync every script under `folder`; returns a SyncReport (never raises for a bad script)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise SyncError(f"{folder} is not a folder.")
    report = SyncReport(folder=str(root), commit=git_commit(root))
    message = f"Synced from {root}" + (f" at git commit {report.commit}" if report.commit else "")
    seen = set()
    for path in sorted(p for p in root.rglob("*") if p.suffix in LANGUAGES and p.is_file()
                       and ".git" not in p.relative_to(root).parts):
        relative = str(path.relative_to(root))
        try:
            with transaction.atomic():
                outcome, script = sync_script(path, root, author, message)
        except (SyncError, ValidationError, OSError, UnicodeDecodeError, DatabaseError) as exc:
            report.errors.append((relative, reason(exc)))
            seen.add(str(path))  # broken, not gone
            continue
        seen.add(script.sync_path)
        getattr(report, outcome).append(script.slug)
    prefix = f"{root}/"
    report.gone = sorted(Script.objects.filter(sync_path__startswith=prefix).exclude(sync_path__in=seen)
                         .values_list("slug", flat=True))
    return report


def reason(exc):
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    if isinstance(exc, UnicodeDecodeError):
        return "the file is not UTF-8 text"
    return str(exc)


def sync_script(path, root, author, message):
    """('created' | 'changed' | 'unchanged', script) for one script file and its settings."""
    for file in (path, path.with_name(path.stem + SETTINGS_SUFFIX)):
        if file.is_symlink() or (file.exists() and not file.resolve().is_relative_to(root)):
            raise SyncError(f"{file.name} is a link: only files inside the folder are read.")
    settings = read_settings(path)
    slug = slugify(path.stem.replace("_", "-"))
    if not slug:
        raise SyncError("its file name gives no usable slug (letters, digits and dashes).")
    source = path.read_text(encoding="utf-8")
    if not source.strip():
        raise SyncError("the script is empty.")
    if "\x00" in source:
        raise SyncError("the script holds a NUL character.")
    wanted = script_fields(settings, path, slug)
    environments = environments_named(settings.get("environments"))
    script = Script.objects.filter(slug=slug).first()
    if script is not None and script.sync_path != str(path):
        raise SyncError(f"the slug {slug} is taken by a script " + (
            f"synced from {script.sync_path}." if script.sync_path else "made in Backfill (not synced)."))
    created = script is None
    if created:
        script = Script(slug=slug, sync_path=str(path), **wanted)
        script.full_clean(exclude=["current_version"])
        script.save()
    changed = apply_fields(script, {**wanted, "sync_path": str(path)})
    if environments is not None and set(script.allowed_environments.all()) != set(environments):
        script.allowed_environments.set(environments)
        changed = True
    previous = script.current_version_id
    changed |= script.save_source(source, author=author, message=message).pk != previous
    changed |= sync_form(script, settings.get("form"))
    return ("created" if created else "changed" if changed else "unchanged"), script


def read_settings(path):
    settings_path = path.with_name(path.stem + SETTINGS_SUFFIX)
    if not settings_path.exists():
        return {}
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SyncError(f"{settings_path.name} is not valid JSON: {exc}.") from exc
    if not isinstance(settings, dict):
        raise SyncError(f"{settings_path.name} must hold a JSON object.")
    unknown = set(settings) - SETTINGS_KEYS
    if unknown:
        raise SyncError(f"{settings_path.name} has unknown settings: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(sorted(SETTINGS_KEYS))}).")
    return settings


def script_fields(settings, path, slug):
    fields = {"name": settings.get("name") or path.stem.replace("_", " ").capitalize(),
              "language": LANGUAGES[path.suffix], "description": settings.get("description", "")}
    if not isinstance(fields["name"], str) or not isinstance(fields["description"], str):
        raise SyncError("name and description are text.")
    if "timeout_seconds" in settings:
        timeout = settings["timeout_seconds"]
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise SyncError("timeout_seconds is a whole number of seconds, at least 1.")
        fields["timeout_seconds"] = timeout
    for flag in FLAGS:
        if flag in settings:
            if not isinstance(settings[flag], bool):
                raise SyncError(f"{flag} is true or false.")
            fields[flag] = settings[flag]
    if "owner_team" in settings:
        team = Group.objects.filter(name=settings["owner_team"]).first() if settings["owner_team"] else None
        if settings["owner_team"] and team is None:
            raise SyncError(f"there is no team named {settings['owner_team']!r}.")
        fields["owner_team"] = team
    if Script.objects.filter(name=fields["name"]).exclude(slug=slug).exists():
        raise SyncError(f"another script is already named {fields['name']!r}.")
    return fields


def environments_named(slugs):
    if slugs is None:
        return None
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise SyncError("environments is a list of environment slugs.")
    found = list(Environment.objects.filter(slug__in=slugs))
    missing = set(slugs) - {e.slug for e in found}
    if missing:
        raise SyncError(f"no environment {', '.join(sorted(missing))}.")
    return found


def apply_fields(script, fields):
    changed = [name for name, value in fields.items() if getattr(script, name) != value]
    for name in changed:
        setattr(script, name, fields[name])
    if changed:
        script.full_clean(exclude=["current_version"])
        script.save()
    return bool(changed)


def sync_form(script, form):
    """Import the form where it differs from the script's (an absent `form` leaves the form alone)."""
    if form is None:
        return False
    current = FormDefinition.objects.filter(script=script).first()
    if not isinstance(form, dict):
        raise SyncError("form is a form definition (a JSON object, as the admin exports it).")
    if current is not None and same_form(export_definition(current), form):
        return False
    import_definition(script, form)
    return True


def same_form(exported, form):
    """Compared as stored, so that an unchanged file never makes a new form (nor a "changed" line)."""
    try:
        fields = sorted((field_spec(FormField(**field_kwargs(f))) for f in form.get("fields") or []),
                        key=lambda f: f["order"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return False  # the import says what is wrong with it
    return (exported["intro"], exported["supports_dry_run"], exported["fields"]) == (
        str(form.get("intro", "")), bool(form.get("supports_dry_run", False)), fields)
