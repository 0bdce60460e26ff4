from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit.services import history
from runs import notify, services
from runs.forms import ControlsForm, NotificationPreferenceForm, RunFilterForm
from runs.models import NotificationPreference
from runs.page import RunPage
from scripts_app.policy import scripts_visible_to


def visible_script_or_404(user, slug):
    script = scripts_visible_to(user).select_related("current_version", "owner_team").filter(slug=slug).first()
    if script is None:
        raise Http404("No such script.")
    return script


def visible_run_or_404(user, run_id):
    run = services.visible_run_or_none(user, run_id)
    if run is None:
        raise Http404("No such run.")
    return run


def add_errors_to_fields(form, error):
    """A service's ValidationError, shown next to the form's fields it names (else above the form)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, field_messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, field_messages)


@login_required
def script_detail(request, slug):
    script = visible_script_or_404(request.user, slug)
    page = RunPage(request, script)
    if page.submitted and page.is_valid():
        if page.needs_confirmation():
            return render(request, "runs/confirm.html", {
                "script": script, "page": page, "summary": page.summary(), "carried": page.carried_fields(),
                "uploads": page.keep_uploads(), "environment": page.environment,
                "dry_run": page.settings.cleaned_data.get("dry_run"), "reason": page.settings.cleaned_data["reason"],
                "needs_approval": script.requires_approval_in(page.environment),
            })
        try:
            run = services.request_run(request.user, script, **page.run_arguments())
        except PermissionDenied as exc:
            page.settings.add_error(None, str(exc))
        except ValidationError as exc:
            add_errors_to_fields(page.settings, exc)
        else:
            page.discard_pending()
            return redirect("run_detail", run_id=run.pk)
    recent, _ = services.run_history(request.user, script=script, page_size=10)
    failed = page.submitted and (page.settings.errors or (page.params is not None and page.params.errors))
    return render(request, "runs/script_detail.html", {
        "script": script, "form": page.settings, "params_form": page.params, "spec": page.spec,
        "pending": page.pending, "upload_tokens": page.pending_tokens(),
        "recent_runs": recent,
        "approval_environments": [env.name for env in page.settings.fields["environment"].queryset
                                  if script.requires_approval_in(env)],
        "versions": script.versions.select_related("author")[:20], "history": history(script)[:50],
    }, status=400 if failed else 200)


@login_required
def run_detail(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    tail = services.log_tail(run.pk, settings.BACKFILL_PAGE_TAIL_BYTES)
    return render(request, "runs/run_detail.html", {
        "run": run, "tail": tail, "tail_is_partial": bool(tail) and tail[0]["seq"] > 1,
        "status": services.status_message(run),
        "can_cancel": not run.is_finished and services.may_cancel(request.user, run),
        "can_control": run.status == "running" and services.may_cancel(request.user, run),
        "watching": notify.is_watching(run, request.user),
        "can_resume": services.may_resume(request.user, run), "controls_form": ControlsForm(initial={
            "batch_size": run.batch_size, "sleep_seconds": run.sleep_seconds}),
        "batches": list(run.batches.order_by("-seq").values("seq", "rows", "seconds", "errors")[:300])[::-1],
        "progress": {"progress_done": run.progress_done, "progress_total": run.progress_total,
                     "progress_rate": run.progress_rate},
        "history": history(run)[:50],
    })


@login_required
def run_log_download(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    response = StreamingHttpResponse(
        services.full_log_bytes(run.pk), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-{run.script.slug}.log"'
    return response


@login_required
@require_POST
def run_controls(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    form = ControlsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        try:
            services.set_controls(run, request.user, **form.changes())
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("run_detail", run_id=run.pk)


@login_required
@require_POST
def run_resume(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    try:
        resumed = services.resume_run(run, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("run_detail", run_id=run.pk)
    return redirect("run_detail", run_id=resumed.pk)


@login_required
@require_POST
def run_notify_me(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    if run.is_finished:
        messages.error(request, f"Run #{run.pk} has already ended ({run.get_status_display().lower()}).")
    elif not request.user.email:
        messages.error(request, "Your account has no email address to notify.")
    else:
        notify.watch(run, request.user)
        messages.success(request, f"You will get an email at {request.user.email} when run #{run.pk} ends.")
    return redirect("run_detail", run_id=run.pk)


@login_required
def notification_settings(request):
    preference, _ = NotificationPreference.objects.get_or_create(user=request.user)
    form = NotificationPreferenceForm(request.POST if request.method == "POST" else None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("notification_settings")
    return render(request, "runs/notification_settings.html", {"form": form})


@login_required
@require_POST
def run_cancel(request, run_id):
    run = visible_run_or_404(request.user, run_id)
    services.cancel_run(run, request.user)
    return redirect("run_detail", run_id=run.pk)


@login_required
def run_list(request):
    form = RunFilterForm(request.GET or None, user=request.user)
    filters = form.cleaned_data if form.is_valid() else {}
    filters = {k: v for k, v in filters.items() if v}
    runs, next_before = services.run_history(request.user, **filters)
    next_query = request.GET.copy()
    next_query["before"] = next_before
    return render(request, "runs/run_list.html", {
        "form": form, "runs": runs, "next_query": next_query.urlencode() if next_before else None,
    }, status=400 if form.errors else 200)

