from django.core.management.base import BaseCommand

from runs.notify import deliver_due
from runs.periodic import once_or_every


class Command(BaseCommand):
    help = "Send the emails and webhooks about ended runs that are due (retrying failures). Once, or every N s."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=0, help="Keep running, checking every N seconds.")

    def handle(self, *args, every, **options):
        once_or_every(every, deliver_due, lambda sent: self.stdout.write(f"Sent {sent or 0} notification(s)."))
