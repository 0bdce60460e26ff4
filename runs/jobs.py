"""The RQ job: claim a queued run and supervise it to its end."""

from runs import services, supervisor
from runs.models import Run


def execute_run(run_id):
    run = Run.objects.select_related("script", "environment", "version").get(pk=run_id)
    if not services.start_run(run):
        return f"run {run_id} was not queued any more ({run.status}); nothing to do"
    supervisor.supervise(run)
    return run.status
