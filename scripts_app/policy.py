"""The one place that decides who may see and do what (object permissions through django-guardian).

A global permission (granted on the model to a user or a team) means "every object"; an object
permission granted to a user or one of their teams means that object only. Every door (pages, API,
WebSocket, admin) asks these functions; lists are filtered in the query.
"""

from guardian.shortcuts import get_objects_for_user

from scripts_app.models import Environment, Script


def _has(user, perm, obj):
    return user.is_active and (user.has_perm(perm) or user.has_perm(perm, obj))


def scripts_visible_to(user):
    if not (user.is_authenticated and user.is_active):
        return Script.objects.none()
    return get_objects_for_user(user, "scripts_app.view_script", Script, accept_global_perms=True)


def can_view_script(user, script):
    return user.is_authenticated and _has(user, "scripts_app.view_script", script)


def may_on_script(user, codename, script=None):
    """For the admin: `codename` on `script`, or (without one) on the global or any single script."""
    perm = f"scripts_app.{codename}"
    if not (user.is_authenticated and user.is_active):
        return False
    if script is not None:
        return _has(user, perm, script)
    return user.has_perm(perm) or get_objects_for_user(user, perm, Script, accept_global_perms=False).exists()


def environments_usable_by(user, script):
    """The environments `user` may run `script` in: allowed for the script and granted to the user."""
    if not (user.is_authenticated and _has(user, "scripts_app.run_script", script)):
        return Environment.objects.none()
    usable = get_objects_for_user(user, "scripts_app.use_environment", Environment, accept_global_perms=True)
    return usable.filter(pk__in=script.allowed_environments.values("pk"))


def can_run_script(user, script, environment):
    return environments_usable_by(user, script).filter(pk=environment.pk).exists()
