"""The one place that decides who may see and do what (object permissions through django-guardian).

A global permission (granted on the model) means "every object"; an object permission granted to
a user or one of their teams means that object only.
"""

from guardian.shortcuts import get_objects_for_user

from scripts_app.models import Environment, Script


def _has(user, perm, obj):
    return user.is_active and (user.has_perm(perm) or user.has_perm(perm, obj))


def scripts_visible_to(user):
    if not user.is_authenticated:
        return Script.objects.none()
    return get_objects_for_user(user, "scripts_app.view_script", Script, accept_global_perms=True)


def can_view_script(user, script):
    return user.is_authenticated and _has(user, "scripts_app.view_script", script)


def environments_usable_by(user, script):
    """The environments `user` may run `script` in: allowed for the script and granted to the user."""
    if not (user.is_authenticated and _has(user, "scripts_app.run_script", script)):
        return Environment.objects.none()
    usable = get_objects_for_user(user, "scripts_app.use_environment", Environment, accept_global_perms=True)
    return usable.filter(pk__in=script.allowed_environments.values("pk"))


def can_run_script(user, script, environment):
    return environments_usable_by(user, script).filter(pk=environment.pk).exists()
