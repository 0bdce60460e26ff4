from django.core.management.base import BaseCommand
from django.db import connections
from rq import SimpleWorker, Worker

from runs.services import redis_connection
from scripts_app.models import Environment


class Command(BaseCommand):
    help = "Run an RQ worker for the given environment queues (default: every environment's queue)."

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", help="Queue names; default: all environments' queues.")
        parser.add_argument("--burst", action="store_true", help="Exit once the queues are empty.")
        parser.add_argument("--no-fork", action="store_true", help="Run jobs in this process (SimpleWorker).")

    def handle(self, *args, **options):
        queues = options["queues"] or list(Environment.objects.values_list("queue_name", flat=True))
        if not queues:
            self.stderr.write("No environments exist yet, so there is no queue to listen on.")
            return
        # The work horse is forked: it must not share this process's database connections.
        connections.close_all()
        worker_class = SimpleWorker if options["no_fork"] else Worker
        worker = worker_class(queues, connection=redis_connection())
        self.stdout.write(f"Worker listening on: {', '.join(queues)}")
        worker.work(burst=options["burst"], with_scheduler=False)
