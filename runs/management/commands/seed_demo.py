"""Demo data for a newcomer: environments, teams, users for each role and two scripts. Idempotent."""

import contextlib
import datetime
import os
import sqlite3

from django.conf import settings
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

CAMPAIGNS = '''"""Fills campaigns.budget_currency where it is missing, a batch at a time, with backfill_sdk.

The target database is named by the environment's secret CAMPAIGNS_DB (a SQLite file, or a
PostgreSQL URL). Keyset pagination on id; the update is idempotent (only rows still missing it).
"""
import json
import os
import sqlite3

import backfill_sdk as bf

with open(os.environ["BACKFILL_PARAMS_FILE"]) as f:
    params = json.load(f)
target = os.environ["CAMPAIGNS_DB"]
if target.startswith("postgres"):
    import psycopg

    conn, mark = psycopg.connect(target, autocommit=True), "%s"
else:
    conn, mark = sqlite3.connect(target, isolation_level=None), "?"

where = f"tenant = {mark} AND created_on BETWEEN {mark} AND {mark} AND budget_currency IS NULL"
where_params = [params["tenant"], params["start"], params["end"]]
if params.get("campaign_ids"):
    where += f" AND id IN ({', '.join([mark] * len(params['campaign_ids']))})"
    where_params += params["campaign_ids"]
currency = params["currency"]
print(f"Tenant {params['tenant']}: campaigns from {params['start']} to {params['end']} into {currency}.")


def apply(rows, dry_run):
    ids = [row[0] for row in rows]
    if not dry_run:
        conn.cursor().execute(
            f"UPDATE campaigns SET budget_currency = {mark} WHERE id IN ({', '.join([mark] * len(ids))}) "
            "AND budget_currency IS NULL", [currency, *ids])
    print(f"{'would convert' if dry_run else 'converted'} campaigns {ids[0]}..{ids[-1]} ({len(ids)})")


summary = bf.run(bf.KeysetSource(conn, "campaigns", key="id", where=where, where_params=where_params), apply,
                 name="campaigns", batch_size=params["batch_size"], sleep=0.5)
print(f"Done: {summary['rows']:,} campaigns in {summary['batches']} batches, {summary['failed_batches']} failed.")
'''

TENANTS = ("acme", "globex", "initech")
DEMO_CAMPAIGNS = 120_000

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
        {"name": "start", "label": "Created on or after", "type": "date", "required": True, "default": "2026-01-01",
         "min": "2020-01-01", "section": "Which campaigns", "order": 2},
        {"name": "end", "label": "Created on or before", "type": "date", "required": True, "default": "2026-03-31",
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


def demo_campaigns_database(slug):
    """A SQLite file of campaigns per environment (kept once made), or the PostgreSQL database of
    BACKFILL_DEMO_TARGET_URL: the target of the demo backfill. Its location, for the CAMPAIGNS_DB secret."""
    url = settings.BACKFILL_DEMO_TARGET_URL
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            fill_campaigns(conn, "%s", "serial")
        return url
    os.makedirs(settings.BACKFILL_DEMO_DIR, exist_ok=True)
    path = os.path.join(settings.BACKFILL_DEMO_DIR, f"demo-campaigns-{slug}.sqlite3")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        fill_campaigns(conn, "?", "integer")
        conn.commit()
    return path


def fill_campaigns(conn, mark, id_type):
    conn.execute(f"CREATE TABLE IF NOT EXISTS campaigns (id {id_type} PRIMARY KEY, tenant text NOT NULL, "
                 "created_on date NOT NULL, budget numeric NOT NULL, budget_currency text)")
    if conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]:
        return
    start = datetime.date(2026, 1, 1)
    rows = [(TENANTS[i % 3], (start + datetime.timedelta(days=(i // 3) % 90)).isoformat(), 100 + i % 900)
            for i in range(DEMO_CAMPAIGNS)]
    conn.cursor().executemany(f"INSERT INTO campaigns (tenant, created_on, budget) VALUES ({mark}, {mark}, {mark})",
                              rows)


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo environments, teams, users and scripts."

    def handle(self, *args, **options):
        staging = self.environment("Staging", "staging")
        production = self.environment("Production", "production")
        self.secret(staging, "DEMO_API_KEY", "stg-demo-key-4f9a2c")
        self.secret(production, "DEMO_API_KEY", "prd-demo-key-8b1e7d")
        for env in (staging, production):
            self.secret(env, "CAMPAIGNS_DB", demo_campaigns_database(env.slug))
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
