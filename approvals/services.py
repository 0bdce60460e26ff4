"""The approval rules, each decided here and only here.

Audit events about approvals name the run (so they show in the run page's History), with the
request's id in their detail.

- Never the requester, whoever they are (an approver, a superuser).
- Where the request names a team, only its members; otherwise anyone who may run the script in
  that environment.
- N distinct approvers (one decision per person); one rejection ends the request.
- Past its expiry a request is expired, by the periodic job or by the first decision that finds it so.
- Every decision and every expiry locks the request row, so two approvers, or an approval and the
  expiry, cannot both win.
- The approved run is released as it was requested: its version, parameters and environment are
  fixed on the run when it is created.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import signing
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from guardian.shortcuts import get_users_with_perms

from approvals import notify
from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from audit.services import record
from runs import services as runs
from runs.models import Run, RunStatus
from scripts_app.policy import can_run_script, can_view_script, environments_with_use, scripts_with_perm

LINK_SALT = "approvals.link"
COMMENT_MAX_LENGTH = 2000


class ApprovalRefused(Exception):
    """A decision that may not be taken; `conflict` when it is too late rather than not allowed."""

    def __init__(self, message, conflict=False):
        super().__init__(message)
        self.conflict = conflict

    @property
    def status_code(self):
        return 409 if self.conflict else 403


# --- opening a request ------------------------------------------------------------------------------

def open_request(run):
    """The run waits for approval under its environment's policy of now; approvers are emailed."""
    environment = run.environment
    request = ApprovalRequest.objects.create(
        run=run, approvals_needed=environment.approvals_needed, approver_team=environment.approver_team,
        expires_at=timezone.now() + timedelta(hours=environment.approval_expiry_hours),
    )
    record("approval.requested", run, actor=run.requested_by, approval=request.pk, script=run.script.slug,
           environment=environment.slug, approvals_needed=request.approvals_needed,
           approver_team=str(request.approver_team or ""))
    transaction.on_commit(lambda: notify.request_made(request, approvers(request)))
    return request


# --- who may do what ------------------------------------------------------------------------------

def is_entitled(user, request):
    """May approve this request by who they are (the requester never is); says nothing of its state."""
    if not (user.is_authenticated and user.is_active) or user.pk == request.run.requested_by_id:
        return False
    if request.approver_team_id:
        return user.groups.filter(pk=request.approver_team_id).exists()
    return can_run_script(user, request.run.script, request.run.environment)


def refusal(user, request):
    """Why `user` may not decide on `request` now, or None when they may."""
    if user.is_authenticated and user.pk == request.run.requested_by_id:
        return ApprovalRefused("You requested this run: someone else must approve it.")
    if not is_entitled(user, request):
        if request.approver_team_id:
            return ApprovalRefused(f"Only members of the team {request.approver_team} may approve this run.")
        return ApprovalRefused(f"Only people who may run {request.run.script} in {request.run.environment} "
                               "may approve it.")
    if not request.is_pending:
        return ApprovalRefused(f"This request is {request.get_status_display().lower()}: it takes no more "
                               "decisions.", conflict=True)
    if request.run.status != RunStatus.AWAITING_APPROVAL:
        return ApprovalRefused("This run no longer waits for approval.", conflict=True)
    earlier = request.decisions.filter(approver=user).first()
    if earlier is not None:
        verb = "approved" if earlier.approved else "rejected"
        return ApprovalRefused(f"You already {verb} this request.", conflict=True)
    return None


def can_see_request(user, request):
    return (user.is_authenticated and user.is_active) and (
        user.pk == request.run.requested_by_id or is_entitled(user, request)
        or can_view_script(user, request.run.script)
    )


def approvers(request):
    """Everyone who may approve the request (active, not the requester), in a fixed number of queries."""
    run = request.run
    users = get_user_model().objects.filter(is_active=True).exclude(pk=run.requested_by_id)
    if request.approver_team_id:
        return list(users.filter(groups=request.approver_team_id).order_by("username"))
    if not run.script.allowed_environments.filter(pk=run.environment_id).exists():
        return []
    may_run = holders(run.script, "run_script", include_global=not run.script.restricted)
    may_use = holders(run.environment, "use_environment", include_global=True)
    return list(users.filter(Q(is_superuser=True) | (Q(pk__in=may_run) & Q(pk__in=may_use))).order_by("username"))


def holders(obj, codename, include_global):
    """The ids of users holding `codename` on `obj`: on the object (themselves or a team), or globally."""
    by_object = get_users_with_perms(obj, only_with_perms_in=[codename], with_group_users=True).values("pk")
    if not include_global:
        return by_object
    permission = Permission.objects.get(codename=codename, content_type__app_label="scripts_app")
    globally = get_user_model().objects.filter(Q(user_permissions=permission) | Q(groups__permissions=permission))
    return get_user_model().objects.filter(Q(pk__in=by_object) | Q(pk__in=globally.values("pk"))).values("pk")


def pending_for(user):
    """The requests waiting for `user`'s decision, oldest first, as one query."""
    if not (user.is_authenticated and user.is_active):
        return ApprovalRequest.objects.none()
    open_to_runners = Q(approver_team__isnull=True,
                        run__script__in=scripts_with_perm(user, "scripts_app.run_script"),
                        run__environment__in=environments_with_use(user))
    return (
        with_decision_counts(ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING,
                                                            expires_at__gt=timezone.now()))
        .filter(Q(approver_team__in=user.groups.all()) | open_to_runners)
        .exclude(run__requested_by=user).exclude(decisions__approver=user)
        .select_related("run__script", "run__environment", "run__requested_by", "run__version", "approver_team")
        .order_by("id")
    )


def with_decision_counts(requests):
    return requests.annotate(approvals_given=Count("decisions", filter=Q(decisions__approved=True)))


# --- deciding --------------------------------------------------------------------------------------

def locked(request_id):
    """The request, locked, with its run locked first (in the order cancelling a run takes them)."""
    run_id = ApprovalRequest.objects.values_list("run_id", flat=True).get(pk=request_id)
    list(Run.objects.select_for_update().filter(pk=run_id).values_list("pk"))
    return ApprovalRequest.objects.select_for_update(of=("self",)).select_related(
        "run__script", "run__environment", "run__requested_by", "approver_team"
    ).get(pk=request_id)


def decide(request_id, user, approved, comment=""):
    """Record `user`'s decision; release or end the run when it settles the request.

    Raises ApprovalRefused (after committing an expiry it found due) when the decision may not be taken.
    """
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH or "\x00" in comment:
        raise ApprovalRefused(f"A comment has at most {COMMENT_MAX_LENGTH} characters.")
    with transaction.atomic():
        request = locked(request_id)
        expire_if_due(request)
        refused = refusal(user, request)
        if refused is None:
            take_decision(request, user, approved, comment)
    if refused is not None:
        raise refused
    return request


def take_decision(request, user, approved, comment):
    ApprovalDecision.objects.create(request=request, approver=user, approved=approved, comment=comment)
    record("approval.approved" if approved else "approval.rejected", request.run, actor=user, approval=request.pk,
           comment=comment)
    if not approved:
        close(request, ApprovalStatus.REJECTED)
        runs.end_unapproved_run(request.run, RunStatus.REJECTED,
                                f"Rejected by {user}" + (f": {comment}" if comment else "."))
    elif request.decisions.filter(approved=True).count() >= request.approvals_needed:
        close(request, ApprovalStatus.APPROVED)
        runs.release_approved_run(request.run)
    else:
        return
    transaction.on_commit(lambda: notify.request_settled(request))


def close(request, status):
    request.status = status
    request.closed_at = timezone.now()
    request.save(update_fields=["status", "closed_at"])


def expire_if_due(request, now=None):
    """Expire a locked pending request whose time is up; True if it did."""
    if not (request.is_pending and request.is_past_expiry(now)):
        return False
    close(request, ApprovalStatus.EXPIRED)
    record("approval.expired", request.run, approval=request.pk, expires_at=request.expires_at.isoformat())
    runs.end_unapproved_run(request.run, RunStatus.EXPIRED,
                            f"Nobody approved it before {timezone.localtime(request.expires_at):%Y-%m-%d %H:%M %Z}.")
    transaction.on_commit(lambda: notify.request_settled(request))
    return True


def expire_due(now=None):
    """Expire every pending request past its time (the periodic job); returns how many."""
    now = now or timezone.now()
    due = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
    expired = 0
    for request_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            expired += expire_if_due(locked(request_id), now)
    return expired


def withdraw(request_id, user):
    """The requester takes the request back: the run is cancelled, and with it the request."""
    with transaction.atomic():
        request = locked(request_id)
        if user.pk != request.run.requested_by_id:
            raise ApprovalRefused("Only the person who requested the run can withdraw the request.")
        if not request.is_pending:
            raise ApprovalRefused(f"This request is {request.get_status_display().lower()}: nothing to withdraw.",
                                  conflict=True)
        runs.cancel_run(request.run, user)
    request.refresh_from_db()
    return request


def run_cancelled(run, user):
    """A run cancelled before it started (only its requester may, while it waits) withdraws its request.
    Called inside the transaction that cancels the run, which holds the run's lock."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().filter(run=run, status=ApprovalStatus.PENDING).first()
        if request is not None:
            close(request, ApprovalStatus.WITHDRAWN)
            record("approval.withdrawn", run, actor=user, approval=request.pk)


# --- what the approval page shows --------------------------------------------------------------------

def last_approved_version(request):
    """The version of the newest earlier run of this script approved for this environment, or None."""
    earlier = ApprovalRequest.objects.filter(
        status=ApprovalStatus.APPROVED, run__script_id=request.run.script_id,
        run__environment_id=request.run.environment_id, pk__lt=request.pk,
    ).select_related("run__version").order_by("-pk").first()
    return earlier.run.version if earlier else None


# --- signed links --------------------------------------------------------------------------------------

def link_token(request, approver):
    return signing.dumps({"r": request.pk, "u": approver.pk}, salt=LINK_SALT, compress=True)


def read_link_token(token, max_age):
    """(request id, approver id) of a genuine link; raises signing.BadSignature (or SignatureExpired)."""
    data = signing.loads(token, salt=LINK_SALT, max_age=max_age)
    return int(data["r"]), int(data["u"])
