from django.core.management.base import BaseCommand

from approvals.services import expire_due
from runs.periodic import once_or_every


class Command(BaseCommand):
    help = "Expire approval requests past their time (their runs end as expired). Once, or every N seconds."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0,
                            help="Keep running and check every this many seconds (the run command uses 30).")

    def handle(self, *args, every, **options):
        once_or_every(every, expire_due, lambda expired: self.stdout.write(
            f"Expired {expired or 0} approval request(s)."))
