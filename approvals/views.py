import difflib

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from approvals import services
from approvals.forms import DecisionForm
from approvals.models import ApprovalRequest


def visible_request_or_404(user, request_id):
    request = ApprovalRequest.objects.select_related(
        "run__script", "run__environment", "run__requested_by", "run__version", "approver_team"
    ).filter(pk=request_id).first()
    if request is None or not services.can_see_request(user, request):
        raise Http404("No such approval request.")
    return request


def source_diff(old_version, new_version):
    """The lines of a unified diff from the last approved version to the one that will run."""
    if old_version is None or old_version.pk == new_version.pk:
        return []
    return list(difflib.unified_diff(
        old_version.source.splitlines(), new_version.source.splitlines(),
        f"v{old_version.number} (last approved)", f"v{new_version.number} (to run)", lineterm="",
    ))


def render_request(http_request, request, *, form=None, problem=None, status=200):
    last_approved = services.last_approved_version(request)
    refused = services.refusal(http_request.user, request)
    return render(http_request, "approvals/detail.html", {
        "approval": request, "run": request.run, "last_approved": last_approved,
        "diff": source_diff(last_approved, request.run.version),
        "decisions": request.decisions.select_related("approver"),
        "approvers": services.approvers(request) if request.is_pending else [],
        "refusal": refused, "form": form or DecisionForm(), "problem": problem,
    }, status=status)


@login_required
def inbox(request):
    return render(request, "approvals/inbox.html", {"pending": services.pending_for(request.user)})


@login_required
def detail(request, request_id):
    return render_request(request, visible_request_or_404(request.user, request_id))


@login_required
def link(request, token):
    """An emailed link: shows the request to the approver it was sent to; never decides anything."""
    try:
        request_id, approver_id = services.read_link_token(token, settings.APPROVAL_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        return render(request, "approvals/link_problem.html", {
            "problem": "This approval link is too old. Open the request from your approvals inbox instead.",
        }, status=410)
    except (signing.BadSignature, ValueError, KeyError, TypeError):
        return render(request, "approvals/link_problem.html", {
            "problem": "This approval link is not valid: it may have been cut or changed. "
                       "Open the request from your approvals inbox instead.",
        }, status=400)
    if approver_id != request.user.pk:
        return render(request, "approvals/link_problem.html", {
            "problem": f"This link was sent to someone else. You are signed in as {request.user.get_username()}: "
                       "sign out and sign in as the person it was sent to, or use your own approvals inbox.",
        }, status=403)
    approval = ApprovalRequest.objects.filter(pk=request_id).select_related("run").first()
    if approval is None or not services.can_see_request(request.user, approval):
        return render(request, "approvals/link_problem.html", {
            "problem": "This request is gone, or you may no longer see it (your rights changed).",
        }, status=403)
    return render_request(request, visible_request_or_404(request.user, request_id))


@login_required
@require_POST
@reauthentication_required
def decide(request, request_id):
    approval = visible_request_or_404(request.user, request_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return render_request(request, approval, form=form, status=400)
    try:
        approval = services.decide(approval.pk, request.user, form.approved, form.cleaned_data["comment"])
    except services.ApprovalRefused as refused:
        approval.refresh_from_db()
        return render_request(request, approval, form=form, problem=str(refused),
                              status=refused.status_code)
    messages.success(request, "Your approval is recorded." if form.approved else "You rejected the request.")
    return redirect("approval_detail", request_id=approval.pk)


@login_required
@require_POST
def withdraw(request, request_id):
    approval = visible_request_or_404(request.user, request_id)
    try:
        services.withdraw(approval.pk, request.user)
    except services.ApprovalRefused as refused:
        return render_request(request, approval, problem=str(refused), status=refused.status_code)
    messages.success(request, "You withdrew the request; the run will not start.")
    return redirect("run_detail", run_id=approval.run_id)
