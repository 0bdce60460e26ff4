import logging
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from approvals.services import expire_due

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Expire approval requests past their time (their runs end as expired). Once, or every N seconds."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0,
                            help="Keep running and check every this many seconds (the run command uses 30).")

    def handle(self, *args, every, **options):
        while True:
            try:
                expired = expire_due()
            except Exception:  # a database hiccup must not stop the periodic job
                if not every:
                    raise
                log.exception("expiring approval requests failed; trying again in %s s", every)
                expired = 0
            if expired or not every:
                self.stdout.write(f"Expired {expired} approval request(s).")
            if not every:
                return
            close_old_connections()
            time.sleep(every)
