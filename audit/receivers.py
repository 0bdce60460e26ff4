"""Audit events for what Django and guardian do on their own: sign-in, teams, permissions."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save
from guardian.models import GroupObjectPermission, UserObjectPermission

from audit.services import record


def on_login(sender, request, user, **kwargs):
    record("auth.signed_in", user, actor=user, request=request)


def on_logout(sender, request, user, **kwargs):
    if user is not None:
        record("auth.signed_out", user, actor=user, request=request)


def on_login_failed(sender, credentials, request=None, **kwargs):
    username = credentials.get("username") or credentials.get("login") or ""
    record("auth.sign_in_failed", object_type="user", object_repr=str(username)[:150], request=request,
           username=str(username)[:150])


def object_permission_changed(action):
    def receiver(sender, instance, **kwargs):
        holder = instance.user if isinstance(instance, UserObjectPermission) else instance.group
        record(action, object_type=instance.content_type.model, object_id=instance.object_pk,
               object_repr=str(instance.content_object or instance.object_pk),
               permission=instance.permission.codename,
               **{"user" if isinstance(instance, UserObjectPermission) else "team": str(holder)})

    return receiver


def global_permissions_changed(holder_key):
    def receiver(sender, instance, action, pk_set, reverse, **kwargs):
        if action not in ("post_add", "post_remove") or not pk_set or reverse:
            return
        verb = "permission.granted" if action == "post_add" else "permission.revoked"
        for codename in Permission.objects.filter(pk__in=pk_set).values_list("codename", flat=True):
            record(verb, object_type="all", object_repr="all objects", permission=codename,
                   **{holder_key: str(instance)})

    return receiver


def membership_changed(sender, instance, action, pk_set, reverse, **kwargs):
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    verb = "team.member_added" if action == "post_add" else "team.member_removed"
    if reverse:  # group.user_set.add(users)
        pairs = [(instance, user) for user in get_user_model().objects.filter(pk__in=pk_set)]
    else:  # user.groups.add(groups)
        pairs = [(group, instance) for group in Group.objects.filter(pk__in=pk_set)]
    for group, user in pairs:
        record(verb, group, user=user.get_username())


def group_saved(sender, instance, created, **kwargs):
    record("team.created" if created else "team.changed", instance)


def group_deleted(sender, instance, **kwargs):
    record("team.deleted", instance)


def connect():
    user_model = get_user_model()
    user_logged_in.connect(on_login, dispatch_uid="audit_login")
    user_logged_out.connect(on_logout, dispatch_uid="audit_logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit_login_failed")
    for model in (UserObjectPermission, GroupObjectPermission):
        post_save.connect(object_permission_changed("permission.granted"), sender=model, weak=False,
                          dispatch_uid=f"audit_grant_{model.__name__}")
        post_delete.connect(object_permission_changed("permission.revoked"), sender=model, weak=False,
                            dispatch_uid=f"audit_revoke_{model.__name__}")
    m2m_changed.connect(global_permissions_changed("user"), sender=user_model.user_permissions.through,
                        weak=False, dispatch_uid="audit_user_perms")
    m2m_changed.connect(global_permissions_changed("team"), sender=Group.permissions.through, weak=False,
                        dispatch_uid="audit_group_perms")
    m2m_changed.connect(membership_changed, sender=user_model.groups.through, dispatch_uid="audit_membership")
    post_save.connect(group_saved, sender=Group, dispatch_uid="audit_group_saved")
    post_delete.connect(group_deleted, sender=Group, dispatch_uid="audit_group_deleted")
