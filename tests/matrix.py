"""Builds the permission matrix's world: demo roles, real objects, and every URL of the project."""

import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import URLResolver, get_resolver

from approvals.services import link_token
from audit.models import AuditEvent
from runs import services
from runs.models import Delivery, LogChunk, Webhook
from scripts_app.models import ApiToken, Environment, Script, Secret

ROLES = ["anonymous", "admin", "engineer", "ops", "viewer", "outsider"]


def all_url_patterns():
    """(name, route) for every URL pattern the project serves, walked from the root resolver."""

    def walk(patterns, prefix="", namespace=None):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            else:
                name = f"{namespace}:{p.name}" if namespace else str(p.name)
                yield name, prefix + str(p.pattern)

    return list(walk(get_resolver().url_patterns))


class World:
    """seed_demo's roles and objects, plus a run of `hello` (engineering) and one of the finance report."""

    def __init__(self):
        call_command("seed_demo", stdout=open("/dev/null", "w"))
        users = get_user_model().objects
        self.users = {name: users.get(username=name) for name in ROLES if name != "anonymous"}
        self.staging = Environment.objects.get(slug="staging")
        self.hello = Script.objects.get(slug="hello")
        self.month_end = Script.objects.get(slug="month-end-report")
        self.hello_run = services.request_run(self.users["engineer"], self.hello, self.staging, {"name": "x"})
        LogChunk.objects.create(run=self.hello_run, seq=1, text="hello\n")
        self.finance_run = services.request_run(self.users["outsider"], self.month_end, self.staging, {})
        self.secret = Secret.objects.filter(environment=self.staging).first()
        self.token = ApiToken.issue(self.users["admin"], "matrix")[0]
        self.event = AuditEvent.objects.first()
        self.team = Group.objects.get(name="engineering")
        production = Environment.objects.get(slug="production")  # requires approval in the demo
        self.approval = services.request_run(self.users["ops"], self.hello, production, {"name": "y"},
                                             reason="matrix").approval
        self.engineers_link = link_token(self.approval, self.users["engineer"])
        self.webhook = Webhook.objects.create(name="chat", url="http://127.0.0.1:9/hook")
        self.delivery = Delivery.objects.create(run=self.hello_run, webhook=self.webhook)

    def admin_object(self, model_path):
        objects = {
            "auth/group": self.team, "auth/user": self.users["engineer"],
            "account/emailaddress": None, "audit/auditevent": self.event,
            "scripts_app/environment": self.staging, "scripts_app/script": self.hello,
            "scripts_app/scriptversion": self.hello.current_version, "scripts_app/secret": self.secret,
            "scripts_app/apitoken": self.token, "runs/run": self.hello_run,
            "runs/logchunk": self.hello_run.chunks.first(), "approvals/approvalrequest": self.approval,
            "ui_builder/formdefinition": self.hello.form_definition, "runs/webhook": self.webhook,
            "runs/delivery": self.delivery,
        }
        obj = objects[model_path]
        return obj.pk if obj is not None else 1

    def url(self, name, route):
        """A concrete URL for `route`, with real objects in it."""
        if name == "admin:app_list":
            return "/admin/scripts_app/"
        if name == "admin:None" and route.endswith("(?P<url>.*)$"):
            return "/admin/no-such-page/"
        if name == "account_confirm_email":
            return "/accounts/confirm-email/not-a-real-key/"
        if name == "account_reset_password_from_key":
            return "/accounts/password/reset/key/1-not-a-real-key/"
        model = re.match(r"admin/(\w+/\w+)/<", route)
        values = {
            "slug": self.hello.slug, "run_id": self.hello_run.pk,
            "id": self.users["engineer"].pk, "user_id": self.users["engineer"].pk, "group_id": self.team.pk,
            "content_type_id": ContentType.objects.get_for_model(Script).pk,
            "request_id": self.approval.pk, "token": self.engineers_link, "pk": self.hello.form_definition.pk,
        }

        def fill(match):
            key = match.group(1)
            if key in ("object_id", "object_pk"):
                return str(self.admin_object(model.group(1)) if model else self.hello.pk)
            return str(values[key])

        path = re.sub(r"<(?:\w+:)?(\w+)>", fill, route)
        assert "<" not in path and "(?P" not in path and "^" not in path, f"no values for {route}"
        return "/" + path
