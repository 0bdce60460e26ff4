import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from approvals.services import expire_due


class Command(BaseCommand):
    help = "Expire approval requests past their time (their runs end as expired). Once, or every N seconds."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0,
                            help="Keep running and check every this many seconds (the run command uses 30).")

    def handle(self, *args, every, **options):
        while True:
            expired = expire_due()
            if expired or not every:
                self.stdout.write(f"Expired {expired} approval request(s).")
            if not every:
                return
            close_old_connections()
            time.sleep(every)
