"""What runs tells the apps above it, without importing them (they connect receivers)."""

from django.dispatch import Signal

# A new run waits for approval; sent inside the transaction that created it. Argument: run.
run_awaits_approval = Signal()

# A run that had not started was cancelled. Arguments: run, user.
run_cancelled_before_start = Signal()
