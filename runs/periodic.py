"""The loop behind the periodic management commands (`reap_runs`, `expire_approvals`)."""

import logging
import time

from django.db import close_old_connections

log = logging.getLogger(__name__)


def once_or_every(every, work, report):
    """Call `work()` once (every=0: errors propagate), or every `every` seconds for ever, logging errors.

    `report(result)` is called after each call that did something, and after a single call.
    """
    while True:
        try:
            result = work()
        except Exception:
            if not every:
                raise
            log.exception("periodic job failed; trying again in %s s", every)
            result = None
        if result or not every:
            report(result)
        if not every:
            return
        close_old_connections()
        time.sleep(every)
