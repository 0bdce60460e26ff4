"""Audit events for changes to scripts, versions, environments and secrets, by any door."""

from django.db.models.signals import post_delete, post_save

from audit.services import record
from scripts_app.models import Environment, Script, ScriptVersion, Secret


def script_saved(sender, instance, created, **kwargs):
    if created:
        record("script.created", instance, slug=instance.slug)


def version_saved(sender, instance, created, **kwargs):
    if created:
        record("script.version_saved", instance.script, actor=instance.author, version=instance.number,
               sha256=instance.sha256, message=instance.message)


def environment_saved(sender, instance, created, **kwargs):
    record("environment.created" if created else "environment.changed", instance, queue=instance.queue_name)


def environment_deleted(sender, instance, **kwargs):
    record("environment.deleted", instance)


def secret_saved(sender, instance, created, **kwargs):
    # Never the value: only which secret of which environment.
    record("secret.created" if created else "secret.changed", instance, environment=instance.environment.slug,
           name=instance.name)


def secret_deleted(sender, instance, **kwargs):
    record("secret.deleted", instance, environment=instance.environment.slug, name=instance.name)


def connect():
    post_save.connect(script_saved, sender=Script, dispatch_uid="audit_script_saved")
    post_save.connect(version_saved, sender=ScriptVersion, dispatch_uid="audit_version_saved")
    post_save.connect(environment_saved, sender=Environment, dispatch_uid="audit_environment_saved")
    post_delete.connect(environment_deleted, sender=Environment, dispatch_uid="audit_environment_deleted")
    post_save.connect(secret_saved, sender=Secret, dispatch_uid="audit_secret_saved")
    post_delete.connect(secret_deleted, sender=Secret, dispatch_uid="audit_secret_deleted")
