"""Writing to the audit log: `record()` is the one entry point every app uses."""

from audit.context import current_request
from audit.models import AuditEvent


def client_ip(request):
    """The client's address as the server saw it (a forwarded-for header alone is not trusted)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(action, obj=None, *, actor=None, object_type=None, object_id=None, object_repr=None, request=None,
           **detail):
    """Append one event. The actor defaults to the signed-in user of the request being served."""
    request = request or current_request()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id if object_id is not None else obj.pk
        object_repr = object_repr or str(obj)
    return AuditEvent.objects.create(
        action=action, actor=actor, actor_username=actor.get_username() if actor else "",
        object_type=object_type or "", object_id="" if object_id is None else str(object_id),
        object_repr=(object_repr or "")[:300], detail=detail, ip_address=client_ip(request),
    )


def history(obj):
    """The events about one object, newest first."""
    return AuditEvent.objects.for_object(obj._meta.model_name, obj.pk)
