"""approvals reacts to what runs announces (runs never imports approvals)."""

from runs.signals import run_awaits_approval, run_cancelled_before_start


def on_run_awaits_approval(sender, run, **kwargs):
    from approvals.services import open_request

    open_request(run)


def on_run_cancelled_before_start(sender, run, user, **kwargs):
    from approvals.services import run_cancelled

    run_cancelled(run, user)


def connect():
    run_awaits_approval.connect(on_run_awaits_approval, dispatch_uid="approvals_open_request")
    run_cancelled_before_start.connect(on_run_cancelled_before_start, dispatch_uid="approvals_withdraw")
