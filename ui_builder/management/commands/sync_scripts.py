from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ui_builder.sync import SyncError, sync_folder


class Command(BaseCommand):
    help = ("Sync the scripts of a folder (e.g. a git checkout) into Backfill: new scripts, new versions, "
            "settings and forms; never deletes. See docs/sync.md.")

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--user", help="Record new versions as saved by this user.")

    def handle(self, *args, folder, user=None, **options):
        author = None
        if user:
            author = get_user_model().objects.filter(username=user).first()
            if author is None:
                raise CommandError(f"No user {user!r}.")
        try:
            report = sync_folder(folder, author=author)
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
        if report.errors:
            raise CommandError(f"{len(report.errors)} script(s) could not be synced (see above); the rest were.")
