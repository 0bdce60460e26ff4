"""Telling people when a run ends: emails and webhooks, planned when the run ends and sent by
`manage.py deliver_notifications` (retried with backoff), so that nothing here delays or fails a run."""

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from runs.models import Delivery, NotificationPreference, Run, RunStatus, RunWatcher, Webhook
from scripts_app.policy import can_view_script

log = logging.getLogger(__name__)
FAILURES = {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST}
MAX_ATTEMPTS = 5
PASS_SECONDS = 60
TAIL_LINES = 20


def plan(run):
    """The deliveries for an ended run, in the transaction that ends it (a savepoint). Never raises."""
    try:
        with transaction.atomic():
            run = Run.objects.select_related("script__owner_team", "requested_by").get(pk=run.pk)
            Delivery.objects.bulk_create(
                [Delivery(run=run, email=email) for email in sorted(recipients(run))]
                + [Delivery(run=run, webhook=hook) for hook in webhooks_for(run)])
    except Exception:
        log.exception("could not plan the notifications of run %s", run.pk)


def recipients(run):
    emails = set()
    requester = run.requested_by
    preference = NotificationPreference.objects.filter(user=requester).first()
    if requester.email and requester.is_active and (preference is None or preference.email_when_my_runs_end):
        emails.add(requester.email)
    watchers = RunWatcher.objects.filter(run=run, user__is_active=True).exclude(user__email="").select_related("user")
    emails |= {w.user.email for w in watchers if can_view_script(w.user, run.script)}  # still allowed to see it
    if run.status in FAILURES and run.script.notify_owner_team_on_failure and run.script.owner_team_id:
        emails |= set(run.script.owner_team.user_set.filter(is_active=True).exclude(email="")
                      .values_list("email", flat=True))
    return emails


def webhooks_for(run):
    hooks = Webhook.objects.filter(active=True).filter(Q(script__isnull=True) | Q(script=run.script_id)).filter(
        Q(environment__isnull=True) | Q(environment=run.environment_id))
    if run.status not in FAILURES:
        hooks = hooks.exclude(only_failures=True)
    return list(hooks)


# --- what is said ------------------------------------------------------------------------------------

def run_url(run):
    return settings.BACKFILL_BASE_URL + reverse("run_detail", args=[run.pk])


def last_lines(run):
    from runs.services import log_tail

    text = "".join(chunk["text"] for chunk in log_tail(run.pk, 16 * 1024))
    return "\n".join(text.rstrip("\n").splitlines()[-TAIL_LINES:])


def summary(run):
    duration = f"{run.duration.total_seconds():.1f} s" if run.duration else "did not start"
    return (f"Run #{run.pk} of {run.script.name} on {run.environment.name} {run.get_status_display().lower()}",
            [f"Script: {run.script.name} (version {run.version.number})", f"Where: {run.environment.name}",
             f"Started by: {run.requested_by.get_username()}", f"Status: {run.get_status_display()}"
             + (f" ({run.status_detail})" if run.status_detail else ""), f"Duration: {duration}",
             f"Run: {run_url(run)}"])


def email_body(run):
    title, lines = summary(run)
    body = "\n".join([title + ".", "", *lines])
    if run.status in FAILURES:
        body += f"\n\nThe last lines of its output:\n\n{last_lines(run)}\n"
    return title, body


def webhook_body(hook, run):
    title, lines = summary(run)
    if hook.kind == Webhook.Kind.SLACK:
        text = f"*{title}*\n" + "\n".join(lines)
        if run.status in FAILURES:
            text += f"\n```{last_lines(run)}```"
        return json.dumps({"text": text}).encode()
    return json.dumps({"event": "run.finished", "run": {
        "id": run.pk, "script": run.script.slug, "version": run.version.number, "environment": run.environment.slug,
        "requested_by": run.requested_by.get_username(), "status": run.status, "detail": run.status_detail,
        "exit_code": run.exit_code, "duration_seconds": run.duration.total_seconds() if run.duration else None,
        "url": run_url(run), "last_lines": last_lines(run) if run.status in FAILURES else None,
    }}).encode()


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- sending -----------------------------------------------------------------------------------------

def deliver_due(now=None):
    """Send every delivery whose time has come; a failure is retried later, up to MAX_ATTEMPTS."""
    now = now or timezone.now()
    sent = 0
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).values_list("pk", flat=True)
    budget_ends = time.monotonic() + PASS_SECONDS
    for pk in list(due[:200]):
        if time.monotonic() > budget_ends:
            break  # the rest waits for the next pass
        try:
            with transaction.atomic():
                delivery = (Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                            .select_related("run__script", "run__environment", "run__requested_by", "run__version",
                                            "webhook")
                            .filter(pk=pk, status=Delivery.Status.PENDING, next_attempt_at__lte=now).first())
                if delivery is not None:
                    sent += attempt(delivery, now)
        except Exception:  # one broken delivery never stops the others
            log.exception("could not deliver notification %s", pk)
    return sent


def attempt(delivery, now):
    try:
        answer = send_email(delivery) if delivery.email else send_webhook(delivery)
        ok = True
    except Exception as exc:  # any failure is the receiver's answer, kept for the admin
        answer, ok = f"{type(exc).__name__}: {exc}"[:500], False
    delivery.attempts += 1
    delivery.attempt_log = [*delivery.attempt_log, {"at": now.isoformat(), "ok": ok, "answer": answer}]
    if ok:
        delivery.status, delivery.sent_at = Delivery.Status.SENT, now
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
    else:
        delivery.next_attempt_at = now + timedelta(seconds=settings.BACKFILL_NOTIFY_RETRY_SECONDS
                                                   * 2 ** (delivery.attempts - 1))
    delivery.save()
    return int(ok)


def send_email(delivery):
    subject, body = email_body(delivery.run)
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [delivery.email]).send()
    return "sent"


def send_webhook(delivery):
    hook, run = delivery.webhook, delivery.run
    body = webhook_body(hook, run)
    headers = {"Content-Type": "application/json", "User-Agent": "Backfill"}
    if hook.kind == Webhook.Kind.JSON:
        headers["X-Backfill-Signature"] = signature(hook.secret, body)
    request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
    try:
        with NO_REDIRECTS.open(request, timeout=10) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}") from None


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answers where it was sent: following redirects would let it point the service elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused", headers, fp)


NO_REDIRECTS = urllib.request.build_opener(RefuseRedirects)


def watch(run, user):
    RunWatcher.objects.get_or_create(run=run, user=user)


def is_watching(run, user):
    return RunWatcher.objects.filter(run=run, user=user).exists()


def ended(run):
    """Hooked to every status change that ends a run: its deliveries are planned with it."""
    plan(run)
