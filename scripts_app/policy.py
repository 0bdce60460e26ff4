"""The one place that decides who may see and do what (object permissions through django-guardian).

A global permission (granted on the model to a user or a team) means "every object"; an object
permission granted to a user or one of their teams means that object only. Every door (pages, API,
WebSocket, admin) asks these functions; lists are filtered in the query.
"""

from django.db.models import Q
from guardian.shortcuts import get_objects_for_user

from scripts_app.models import Environment, Script


def _active(user):
    return user.is_authenticated and user.is_active


def _has(user, perm, obj):
    """A global permission, or one on this object. Restricted scripts take the object permission only."""
    if not _active(user):
        return False
    if user.has_perm(perm, obj):  # an object permission (or a superuser)
        return True
    return not getattr(obj, "restricted", False) and user.has_perm(perm)


def scripts_with_perm(user, perm):
    """The scripts `user` holds `perm` on, as one query: global (unrestricted ones) or per object."""
    if not _active(user):
        return Script.objects.none()
    if user.is_superuser:
        return Script.objects.all()
    granted = get_objects_for_user(user, perm, Script, accept_global_perms=False).values("pk")
    if user.has_perm(perm):
        return Script.objects.filter(Q(restricted=False) | Q(pk__in=granted))
    return Script.objects.filter(pk__in=granted)


def scripts_visible_to(user):
    return scripts_with_perm(user, "scripts_app.view_script")


def can_view_script(user, script):
    return _has(user, "scripts_app.view_script", script)


def may_on_script(user, codename, script=None):
    """For the admin: `codename` on `script`, or (without one) on any script at all."""
    perm = f"scripts_app.{codename}"
    if script is not None:
        return _has(user, perm, script)
    return scripts_with_perm(user, perm).exists()


def environments_with_use(user):
    """The environments `user` may run scripts in at all (whichever scripts they may run)."""
    if not _active(user):
        return Environment.objects.none()
    return get_objects_for_user(user, "scripts_app.use_environment", Environment, accept_global_perms=True)


def environments_usable_by(user, script):
    """The environments `user` may run `script` in: allowed for the script and granted to the user."""
    if not _has(user, "scripts_app.run_script", script):
        return Environment.objects.none()
    return environments_with_use(user).filter(pk__in=script.allowed_environments.values("pk"))


def can_run_script(user, script, environment):
    return environments_usable_by(user, script).filter(pk=environment.pk).exists()
