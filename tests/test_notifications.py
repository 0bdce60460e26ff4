"""When a run ends: emails (contents, preferences, "Notify me", the team on failure) and webhooks received by a
real HTTP server on loopback (Slack text; signed JSON, signature checked), retried and given up on a failing one,
never touching the run."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone

from runs import services
from runs.models import Delivery, NotificationPreference, Run, RunStatus, RunWatcher, Webhook
from runs.notify import MAX_ATTEMPTS, deliver_due
from tests.conftest import work_queue

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = "print('loading rows')\nfor i in range(30):\n    print('row', i)\nraise SystemExit(4)\n"


class Receiver:
    """An HTTP server on a loopback port that keeps what it is sent and answers `status`."""

    def __init__(self, status=200):
        self.received, self.status = [], status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def ended_run(user, make_script, env, source="print('done')\n", slug="job"):
    run = services.request_run(user, make_script(source, slug=slug), env, {})
    work_queue(env.queue_name)
    run.refresh_from_db()
    return run


def test_the_requester_is_emailed_what_ran_where_how_it_ended_with_the_last_lines(engineer, make_script, staging):
    run = ended_run(engineer, make_script, staging, FAILING)
    assert run.status == RunStatus.FAILED
    assert deliver_due() == 1
    [message] = mail.outbox
    assert message.to == ["engineer@example.com"]
    assert message.subject == f"Run #{run.pk} of Job on Staging failed"
    for text in ("Script: Job (version 1)", "Where: Staging", "Started by: engineer", "Status: Failed (Exited with "
                 "code 4.)", f"Run: http://127.0.0.1:8000/runs/{run.pk}/", "row 29", "row 10"):
        assert text in message.body
    assert "loading rows" not in message.body  # the last 20 lines only
    assert deliver_due() == 0  # sent once


def test_preferences_watchers_and_the_owner_team_on_failure(engineer, make_user, make_script, staging, client):
    NotificationPreference.objects.create(user=engineer, email_when_my_runs_end=False)
    script = make_script("import time\ntime.sleep(0.1)\nraise SystemExit(1)\n", slug="watched")
    script.owner_team = Group.objects.create(name="owners")
    script.notify_owner_team_on_failure = True
    script.save()
    make_user("owner", groups=["owners"])
    watcher = make_user("watcher", groups=["engineering"])
    run = services.request_run(engineer, script, staging, {})
    client.force_login(watcher)
    client.post(f"/runs/{run.pk}/notify-me/")
    assert RunWatcher.objects.filter(run=run, user=watcher).exists()
    assert "You will get an email when it ends." in client.get(f"/runs/{run.pk}/").content.decode()
    work_queue(staging.queue_name)
    deliver_due()
    assert sorted(m.to[0] for m in mail.outbox) == ["owner@example.com", "watcher@example.com"]


def test_the_preference_page_switches_the_email_off(client, engineer):
    client.force_login(engineer)
    assert client.get("/notifications/").status_code == 200
    client.post("/notifications/", {})
    assert NotificationPreference.objects.get(user=engineer).email_when_my_runs_end is False


def test_webhooks_reach_a_real_server_slack_text_and_signed_json(engineer, make_script, staging, production,
                                                                 receiver):
    slack = Webhook.objects.create(name="chat", kind=Webhook.Kind.SLACK, url=receiver.url)
    signed = Webhook.objects.create(name="ops", kind=Webhook.Kind.JSON, url=receiver.url, environment=staging)
    Webhook.objects.create(name="prod only", kind=Webhook.Kind.JSON, url=receiver.url, environment=production)
    Webhook.objects.create(name="failures", kind=Webhook.Kind.JSON, url=receiver.url, only_failures=True)
    run = ended_run(engineer, make_script, staging)
    assert deliver_due() == 3  # the requester's email, and the two webhooks that apply
    bodies = {json.loads(body).get("event", "slack"): (headers, body) for headers, body in receiver.received}
    assert set(bodies) == {"slack", "run.finished"}
    assert f"*Run #{run.pk} of Job on Staging succeeded*" in json.loads(bodies["slack"][1])["text"]
    assert "X-Backfill-Signature" not in bodies["slack"][0]
    headers, body = bodies["run.finished"]
    expected = "sha256=" + hmac.new(signed.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Backfill-Signature"], expected)
    payload = json.loads(body)["run"]
    assert (payload["id"], payload["script"], payload["environment"], payload["status"], payload["requested_by"]) == (
        run.pk, "job", "staging", "succeeded", "engineer")
    assert slack.deliveries.get().attempt_log[0]["answer"] == "HTTP 200"


def test_a_failing_webhook_is_retried_with_backoff_then_given_up_without_touching_the_run(
        engineer, make_script, staging, settings):
    down = Receiver(status=500)
    try:
        hook = Webhook.objects.create(name="flaky", kind=Webhook.Kind.JSON, url=down.url)
        run = ended_run(engineer, make_script, staging)
        delivery = Delivery.objects.get(webhook=hook)
        now = timezone.now()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            deliver_due(now)
            delivery.refresh_from_db()
            assert delivery.attempts == attempt
            if attempt < MAX_ATTEMPTS:
                wait = timedelta(seconds=settings.BACKFILL_NOTIFY_RETRY_SECONDS * 2 ** (attempt - 1))
                assert delivery.next_attempt_at == now + wait  # backoff doubles
                deliver_due(now + wait - timedelta(seconds=1))  # not yet due
                now += wait
        assert delivery.status == Delivery.Status.FAILED and len(down.received) == MAX_ATTEMPTS
        assert [a["answer"] for a in delivery.attempt_log] == ["RuntimeError: HTTP 500"] * MAX_ATTEMPTS
        assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    finally:
        down.close()


def test_notify_me_on_an_ended_run_says_so(client, engineer, make_script, staging):
    run = ended_run(engineer, make_script, staging)
    client.force_login(engineer)
    page = client.post(f"/runs/{run.pk}/notify-me/", follow=True).content.decode()
    assert "has already ended" in page and not RunWatcher.objects.exists()
