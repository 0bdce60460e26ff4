"""Demo data for a newcomer: environments, teams, users for each role and two scripts. Idempotent."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from guardian.shortcuts import assign_perm

from scripts_app.models import Environment, Script, Secret
from ui_builder.models import FormDefinition
from ui_builder.services import import_definition

DEMO_PASSWORD = "backfill-demo"

HELLO = '''"""Says hello, in colour, over a few seconds."""
import json
import os
import time

with open(os.environ["BACKFILL_PARAMS_FILE"]) as f:
    params = json.load(f)
name = params.get("name", "world")

print(f"\\033[1;32mHello, {name}!\\033[0m")
print(f"Running on {os.environ['BACKFILL_ENVIRONMENT']}, run #{os.environ['BACKFILL_RUN_ID']}.")
print(f"The API key this environment gives me is {os.environ.get('DEMO_API_KEY', 'not set')}.")
for step in range(1, 6):
    time.sleep(0.7)
    print(f"step {step}/5: \\033[36mworking\\033[0m")
time.sleep(0.7)
print("\\033[1;33mAll done.\\033[0m")
'''

CAMPAIGNS = '''"""Converts campaign budgets to a currency, a batch at a time (a demo: it changes nothing)."""
import json
import os
import time

with open(os.environ["BACKFILL_PARAMS_FILE"]) as f:
    params = json.load(f)
dry = os.environ["BACKFILL_DRY_RUN"] == "1"
ids = params.get("campaign_ids") or list(range(1, 2001))
batch = params["batch_size"]
print(f"Tenant {params['tenant']}: campaigns from {params['start']} to {params['end']} into {params['currency']}"
      f"{' (dry run: nothing is written)' if dry else ''}.")
for start in range(0, len(ids), batch):
    chunk = ids[start:start + batch]
    time.sleep(0.3)
    verb = "would convert" if dry else "converted"
    print(f"{verb} campaigns {chunk[0]}..{chunk[-1]} ({start + len(chunk)}/{len(ids)})")
print("Done.")
'''

HELLO_FORM = {
    "intro": "Greets someone by name, in colour, over a few seconds: a harmless way to try Backfill.",
    "fields": [
        {"name": "name", "label": "Who to greet", "type": "text", "required": True, "default": "world",
         "max": "40", "help_text": "A name, up to 40 characters.", "order": 1},
    ],
}

CAMPAIGNS_FORM = {
    "intro": "Converts the budgets of a tenant's campaigns to one currency, for campaigns created between two "
             "dates. Try it as a dry run first: it then only reports what it would change.",
    "supports_dry_run": True,
    "fields": [
        {"name": "tenant", "label": "Tenant", "type": "choice", "required": True, "section": "Which campaigns",
         "choices": [{"value": "acme", "label": "Acme Corp"}, {"value": "globex", "label": "Globex"},
                     {"value": "initech", "label": "Initech"}], "order": 1},
        {"name": "start", "label": "Created on or after", "type": "date", "required": True,
         "min": "2020-01-01", "section": "Which campaigns", "order": 2},
        {"name": "end", "label": "Created on or before", "type": "date", "required": True,
         "min": "2020-01-01", "section": "Which campaigns", "order": 3},
        {"name": "only_some", "label": "Only some campaigns", "type": "boolean", "section": "Which campaigns",
         "order": 4},
        {"name": "campaign_ids", "label": "Campaign ids", "type": "id_list", "required": True, "max": "1000",
         "help_text": "One per line or separated by commas; at most 1000.", "section": "Which campaigns",
         "visible_if": {"field": "only_some", "equals": "true"}, "order": 5},
        {"name": "currency", "label": "Convert to", "type": "radio", "required": True, "default": "EUR",
         "choices": [{"value": "EUR", "label": "Euro"}, {"value": "USD", "label": "US dollar"},
                     {"value": "GBP", "label": "Pound sterling"}], "section": "How", "order": 6},
        {"name": "batch_size", "label": "Batch size", "type": "integer", "required": True, "default": "500",
         "min": "100", "max": "5000", "help_text": "Campaigns per batch: 100 to 5000.", "section": "How",
         "order": 7},
    ],
}

TICKER = '''#!/bin/bash
# Prints a line every second for about a minute.
seconds="${BACKFILL_PARAM_SECONDS:-60}"
for i in $(seq 1 "$seconds"); do
  echo "tick $i of $seconds at $(date +%H:%M:%S)"
  sleep 1
done
echo "finished after $seconds ticks"
'''

ENGINEERING_PERMISSIONS = ["view_script", "run_script", "add_script", "change_script", "view_scriptversion",
                           "view_environment", "view_run", "view_logchunk", "view_approvalrequest"]

MONTH_END = '''"""Totals the month for finance (a stand-in for a sensitive report)."""
import time

for account in ("revenue", "costs", "payroll"):
    print(f"{account}: checked")
    time.sleep(0.3)
print("month closed")
'''

ROLES = {
    # username: (team, is_staff, is_superuser)
    "admin": (None, True, True),
    "engineer": ("engineering", True, False),
    "ops": ("ops", False, False),
    "viewer": ("viewers", False, False),
    "outsider": ("finance", False, False),
}
TEAMS = ("engineering", "ops", "viewers", "finance")


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo environments, teams, users and scripts."

    def handle(self, *args, **options):
        staging = self.environment("Staging", "staging")
        production = self.environment("Production", "production")
        self.secret(staging, "DEMO_API_KEY", "stg-demo-key-4f9a2c")
        self.secret(production, "DEMO_API_KEY", "prd-demo-key-8b1e7d")
        teams = {name: Group.objects.get_or_create(name=name)[0] for name in TEAMS}
        users = {name: self.user(name, *role, teams) for name, role in ROLES.items()}

        hello = self.script("Hello", "hello", "python", HELLO, teams["engineering"], [staging, production],
                            "Greets someone in colour over a few seconds. Parameter: name.", users["engineer"])
        ticker = self.script("Ticker", "ticker", "bash", TICKER, teams["engineering"], [staging, production],
                             "Prints a line every second for about a minute. Parameter: seconds.",
                             users["engineer"])
        campaigns = self.script("Campaign currency backfill", "campaign-currency-backfill", "python", CAMPAIGNS,
                                teams["engineering"], [staging, production],
                                "Converts campaign budgets to one currency, in batches.", users["engineer"])
        for script, form in ((hello, HELLO_FORM), (campaigns, CAMPAIGNS_FORM)):
            if not FormDefinition.objects.filter(script=script).exists():
                import_definition(script, form)

        # Engineering may see, run, add and edit every script (global permissions); the others get
        # permissions on these scripts only.
        for perm in ENGINEERING_PERMISSIONS:
            teams["engineering"].permissions.add(Permission.objects.get(codename=perm))
        for script in (hello, ticker, campaigns):
            assign_perm("scripts_app.view_script", teams["viewers"], script)
            for perm in ("view_script", "run_script"):
                assign_perm(f"scripts_app.{perm}", teams["ops"], script)
        for env in (staging, production):
            assign_perm("scripts_app.use_environment", teams["engineering"], env)
        assign_perm("scripts_app.use_environment", teams["ops"], production)

        # A sensitive script that only finance sees (engineering's global rights aside).
        month_end = self.script("Month-end report", "month-end-report", "python", MONTH_END, teams["finance"],
                                [staging], "Closes the month's books. Finance only.", users["admin"])
        month_end.restricted = True
        month_end.save(update_fields=["restricted"])
        for perm in ("view_script", "run_script"):
            assign_perm(f"scripts_app.{perm}", teams["finance"], month_end)
        assign_perm("scripts_app.use_environment", teams["finance"], staging)

        self.stdout.write(self.style.SUCCESS("Demo data ready. Sign in with one of (password for all: "
                                             f"{DEMO_PASSWORD}): {', '.join(ROLES)}"))

    def environment(self, name, slug):
        """Production is created requiring one approval (by anyone else who may run the script there)
        and a confirmation on the run form."""
        env, _ = Environment.objects.get_or_create(slug=slug, defaults={
            "name": name, "queue_name": slug, "approval_required": slug == "production",
            "confirm_runs": slug == "production",
        })
        return env

    def secret(self, environment, name, value):
        if not Secret.objects.filter(environment=environment, name=name).exists():
            secret = Secret(environment=environment, name=name)
            secret.set_value(value)
            secret.save()

    def user(self, username, team, is_staff, is_superuser, teams):
        user, created = get_user_model().objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@example.com", "is_staff": is_staff, "is_superuser": is_superuser},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        if team:
            user.groups.add(teams[team])
        return user

    def script(self, name, slug, language, source, team, environments, description, author):
        script, _ = Script.objects.get_or_create(
            slug=slug, defaults={"name": name, "language": language, "owner_team": team, "description": description}
        )
        script.allowed_environments.add(*environments)
        script.save_source(source, author=author, message="Demo script")
        return script
