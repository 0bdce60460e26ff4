from django.core.management.base import BaseCommand

from runs.periodic import once_or_every
from runs.services import reap_lost_runs


class Command(BaseCommand):
    help = ("Mark running runs without a heartbeat for BACKFILL_LOST_AFTER_SECONDS as lost (and drop their RQ "
            "jobs). Once, or every N seconds.")

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0, help="Keep running, checking every N seconds.")

    def handle(self, *args, every, **options):
        once_or_every(every, reap_lost_runs, lambda lost: self.stdout.write(
            f"Marked {len(lost or [])} run(s) lost: {', '.join(f'#{r.pk}' for r in lost or []) or 'none'}."))
