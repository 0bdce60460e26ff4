from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from scripts_app.models import ApiToken


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (it cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. 'laptop' or 'ci'.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'.")
        _, key = ApiToken.issue(user, name)
        self.stdout.write(key)
