"""The approval emails, as text and HTML, through Django's email framework."""

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

log = logging.getLogger(__name__)


def absolute(path):
    return settings.BACKFILL_BASE_URL + path


def send(to, subject, template, context):
    """One message; a mail server that fails is logged, never fails the request that caused it."""
    context = {**context, "base_url": settings.BACKFILL_BASE_URL}
    try:
        message = EmailMultiAlternatives(subject, render_to_string(f"approvals/email/{template}.txt", context),
                                         settings.DEFAULT_FROM_EMAIL, [to])
        message.attach_alternative(render_to_string(f"approvals/email/{template}.html", context), "text/html")
        message.send()
    except Exception:
        log.exception("could not email %s about %s", to, subject)


def request_made(request, approvers):
    """Each approver gets a link of their own (signed for them and this request)."""
    from approvals.services import link_token

    run = request.run
    subject = f"{run.requested_by} wants to run {run.script} on {run.environment}"
    for approver in approvers:
        if approver.email:
            link = absolute(reverse("approval_link", args=[link_token(request, approver)]))
            send(approver.email, subject, "request", {"request": request, "run": run, "approver": approver,
                                                      "link": link})


def request_settled(request):
    """The requester learns the outcome: approved (and started), rejected, or expired."""
    run = request.run
    requester = run.requested_by
    if not requester.email:
        return
    subject = f"Your run of {run.script} on {run.environment} was {request.get_status_display().lower()}"
    send(requester.email, subject, "settled", {
        "request": request, "run": run, "decisions": list(request.decisions.select_related("approver")),
        "link": absolute(reverse("run_detail", args=[run.pk])),
    })
