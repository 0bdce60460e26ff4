"""Approvals: every rule, the races, links, emails, reauthentication, the API and the pages."""

import asyncio
import re
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from approvals import services
from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from runs import services as runs
from runs.models import LogChunk, Run, RunStatus
from runs.routing import websocket_urlpatterns
from scripts_app.models import ApiToken
from tests.conftest import PASSWORD, NewEvents, work_queue


@pytest.fixture
def protected(production):
    production.approval_required = True
    production.save()
    return production


@pytest.fixture
def backfill(make_script, staging, protected):
    return make_script("print('version one')\n", slug="currency-backfill", environments=[staging, protected])


@pytest.fixture
def ana(make_user, engineer):
    """A second engineer: may run every script on staging and production, so may approve there."""
    return make_user("ana", groups=["engineering"])


@pytest.fixture
def bob(make_user, engineer):
    return make_user("bob", groups=["engineering"])


def request_on(user, script, environment, params=None, reason="Fix the March rates"):
    return runs.request_run(user, script, environment, params or {"month": "2026-03"}, reason=reason)


def approval_of(run):
    return ApprovalRequest.objects.get(run=run)


def signed_in(user):
    """A browser session that confirmed its password just now, so deciding asks for no reauthentication."""
    client = Client()
    client.force_login(user)
    response = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user, 'tests')[1]}")
    return client


# --- requesting ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_protected_run_waits_and_each_approver_gets_an_email_with_a_link_of_their_own(
        engineer, ana, bob, backfill, protected, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = request_on(engineer, backfill, protected)
    assert run.status == RunStatus.AWAITING_APPROVAL
    request = approval_of(run)
    assert (request.status, request.approvals_needed) == (ApprovalStatus.PENDING, 1)
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@example.com", "bob@example.com"]  # never the requester
    message = next(m for m in mail.outbox if m.to == ["ana@example.com"])
    assert message.subject == "engineer wants to run Currency-Backfill on Production"
    assert "Fix the March rates" in message.body and "2026-03" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "Review the code" in html
    links = {m.to[0]: re.search(r"http://\S+/approvals/link/\S+/", m.body).group(0) for m in mail.outbox}
    assert links["ana@example.com"] != links["bob@example.com"]
    assert links["ana@example.com"] in html


@pytest.mark.django_db
def test_unprotected_environments_queue_at_once_and_a_script_can_always_require_approval(
        engineer, backfill, staging):
    assert request_on(engineer, backfill, staging).status == RunStatus.QUEUED
    backfill.always_require_approval = True
    backfill.save()
    assert request_on(engineer, backfill, staging).status == RunStatus.AWAITING_APPROVAL


@pytest.mark.django_db
def test_a_reason_is_needed_where_approval_is(engineer, backfill, protected, client):
    client.force_login(engineer)
    response = client.post("/scripts/currency-backfill/", {"environment": protected.pk, "params": "{}"})
    assert response.status_code == 400
    assert "say why" in str(response.context["form"].errors["reason"])
    api = api_for(engineer).post("/api/runs/", {"script": "currency-backfill", "environment": "production"},
                                 format="json")
    assert api.status_code == 400 and "say why" in api.json()["reason"][0]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_policy_is_the_one_of_request_time(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    protected.approvals_needed = 3
    protected.save()
    services.decide(approval_of(run).pk, ana, True)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


# --- who may approve -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_never_the_requester_even_a_superuser(django_user_model, backfill, protected):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    run = request_on(root, backfill, protected)
    with pytest.raises(services.ApprovalRefused, match="someone else must approve"):
        services.decide(approval_of(run).pk, root, True)
    assert not ApprovalDecision.objects.exists()
    assert root not in services.approvers(approval_of(run))


@pytest.mark.django_db
def test_only_members_of_the_approver_team(engineer, ana, make_user, backfill, protected):
    leads = Group.objects.create(name="leads")
    lead = make_user("lead", groups=["leads"])  # may not even run the script: the team is what counts
    protected.approver_team = leads
    protected.save()
    run = request_on(engineer, backfill, protected)
    with pytest.raises(services.ApprovalRefused, match="Only members of the team leads"):
        services.decide(approval_of(run).pk, ana, True)
    assert services.approvers(approval_of(run)) == [lead]
    services.decide(approval_of(run).pk, lead, True)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_without_a_team_only_those_who_may_run_it_there(engineer, make_user, backfill, protected):
    viewer = make_user("viewer")
    assign_perm("scripts_app.view_script", viewer, backfill)
    run = request_on(engineer, backfill, protected)
    with pytest.raises(services.ApprovalRefused, match="Only people who may run"):
        services.decide(approval_of(run).pk, viewer, True)


@pytest.mark.django_db
def test_n_distinct_approvers(engineer, ana, bob, backfill, protected):
    protected.approvals_needed = 2
    protected.save()
    run = request_on(engineer, backfill, protected)
    services.decide(approval_of(run).pk, ana, True, "looks right")
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    with pytest.raises(services.ApprovalRefused, match="already approved"):
        services.decide(approval_of(run).pk, ana, True)
    services.decide(approval_of(run).pk, bob, True)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and approval_of(run).status == ApprovalStatus.APPROVED


@pytest.mark.django_db
def test_one_rejection_ends_the_request(engineer, ana, bob, backfill, protected, django_capture_on_commit_callbacks):
    protected.approvals_needed = 2
    protected.save()
    run = request_on(engineer, backfill, protected)
    services.decide(approval_of(run).pk, ana, True)
    with django_capture_on_commit_callbacks(execute=True):
        services.decide(approval_of(run).pk, bob, False, "wrong month")
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED and "Rejected by bob: wrong month" in run.status_detail
    assert approval_of(run).status == ApprovalStatus.REJECTED
    assert [m.to for m in mail.outbox] == [["engineer@example.com"]]
    assert "was rejected" in mail.outbox[0].subject and "wrong month" in mail.outbox[0].body
    with pytest.raises(services.ApprovalRefused, match="rejected"):
        services.decide(approval_of(run).pk, ana, True)


# --- expiry and withdrawal ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_periodic_job_expires_requests_nobody_looked_at(engineer, backfill, protected,
                                                            django_capture_on_commit_callbacks):
    run = request_on(engineer, backfill, protected)
    later = request_on(engineer, backfill, protected)
    ApprovalRequest.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(minutes=1))
    new = NewEvents()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_approvals", stdout=open("/dev/null", "w"))
    run.refresh_from_db()
    assert run.status == RunStatus.EXPIRED and approval_of(run).status == ApprovalStatus.EXPIRED
    assert approval_of(later).status == ApprovalStatus.PENDING
    assert new.actions() == ["approval.expired", "run.finished"]
    assert "was expired" in mail.outbox[0].subject


@pytest.mark.django_db
def test_a_decision_after_expiry_expires_the_request_instead(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    ApprovalRequest.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(services.ApprovalRefused, match="expired"):
        services.decide(approval_of(run).pk, ana, True)
    run.refresh_from_db()
    assert run.status == RunStatus.EXPIRED and not ApprovalDecision.objects.exists()


@pytest.mark.django_db
def test_the_requester_can_withdraw_and_nobody_else_through_the_approval_page(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    request = approval_of(run)
    assert signed_in(ana).post(f"/approvals/{request.pk}/withdraw/").status_code == 403
    new = NewEvents()
    response = signed_in(engineer).post(f"/approvals/{request.pk}/withdraw/")
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and approval_of(run).status == ApprovalStatus.WITHDRAWN
    assert [e.action for e in new.all() if e.action.startswith("approval.")] == ["approval.withdrawn"]
    with pytest.raises(services.ApprovalRefused):
        services.decide(request.pk, ana, True)


@pytest.mark.django_db
def test_cancelling_a_waiting_run_from_its_page_withdraws_the_request(engineer, backfill, protected):
    run = request_on(engineer, backfill, protected)
    page = signed_in(engineer).get(f"/runs/{run.pk}/").content.decode()
    assert "Withdraw the request" in page
    signed_in(engineer).post(f"/runs/{run.pk}/cancel/")
    assert approval_of(run).status == ApprovalStatus.WITHDRAWN


# --- what runs is what was approved ------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_approved_run_executes_the_approved_version_and_parameters(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected, params={"month": "2026-03"})
    backfill.save_source("print('version two, never approved')\n", author=engineer)
    services.decide(approval_of(run).pk, ana, True)
    work_queue(protected.queue_name)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert "".join(LogChunk.objects.filter(run=run).values_list("text", flat=True)) == "version one\n"
    assert run.params == {"month": "2026-03"} and run.version.number == 1 and run.environment == protected


# --- races -----------------------------------------------------------------------------------------

def at_once(*actions):
    """Run the actions in threads released together; each thread has its own database connection."""
    barrier = threading.Barrier(len(actions))
    outcomes = [None] * len(actions)

    def worker(index, action):
        try:
            barrier.wait()
            outcomes[index] = action()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_for_one_approval_needed(engineer, ana, bob, backfill, protected, clean_redis):
    for _ in range(5):
        run = request_on(engineer, backfill, protected)
        pk = approval_of(run).pk
        outcomes = at_once(lambda pk=pk: services.decide(pk, ana, True), lambda pk=pk: services.decide(pk, bob, True))
        refused = [o for o in outcomes if isinstance(o, services.ApprovalRefused)]
        assert len(refused) == 1 and refused[0].conflict, outcomes
        assert ApprovalDecision.objects.filter(request_id=pk).count() == 1
        run.refresh_from_db()
        assert run.status == RunStatus.QUEUED
    assert clean_redis.llen(f"rq:queue:{protected.queue_name}") == 5  # one job per run, never two


@pytest.mark.django_db(transaction=True)
def test_approve_and_expire_at_once_never_both_win(engineer, ana, backfill, protected):
    for _ in range(5):
        run = request_on(engineer, backfill, protected)
        pk = approval_of(run).pk
        ApprovalRequest.objects.filter(pk=pk).update(expires_at=timezone.now() + timedelta(milliseconds=20))
        at_once(lambda pk=pk: services.decide(pk, ana, True),
                lambda: services.expire_due(timezone.now() + timedelta(milliseconds=20)))
        request = ApprovalRequest.objects.get(pk=pk)
        run.refresh_from_db()
        decisions = ApprovalDecision.objects.filter(request_id=pk).count()
        assert (request.status, run.status, decisions) in {
            (ApprovalStatus.APPROVED, RunStatus.QUEUED, 1), (ApprovalStatus.EXPIRED, RunStatus.EXPIRED, 0),
        }


# --- links, pages, reauthentication, CSRF ---------------------------------------------------------------

def emailed_link(to, captured):
    message = next(m for m in mail.outbox if m.to == [to])
    return re.search(r"http://[^/]+(/approvals/link/\S+/)", message.body).group(1)


@pytest.mark.django_db
def test_a_link_shows_the_page_and_never_decides(engineer, ana, bob, backfill, protected,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = request_on(engineer, backfill, protected)
    link = emailed_link("ana@example.com", mail.outbox)

    anonymous = Client().get(link)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/?next=/approvals/link/")

    ana_browser = signed_in(ana)
    page = ana_browser.get(link)
    assert page.status_code == 200
    text = page.content.decode()
    assert "print(&#x27;version one&#x27;)" in text and "Fix the March rates" in text and "2026-03" in text
    assert 'value="approve"' in text and not ApprovalDecision.objects.exists()

    other = signed_in(bob).get(link)
    assert other.status_code == 403 and "sent to someone else" in other.content.decode()
    forged = ana_browser.get(link[:-6] + "xxxxx/")
    assert forged.status_code == 400 and "not valid" in forged.content.decode()

    ana_browser.post(f"/approvals/{approval_of(run).pk}/decide/", {"decision": "approve"})
    reused = ana_browser.get(link)
    assert reused.status_code == 200 and "This request is approved" in reused.content.decode()
    assert 'value="approve"' not in reused.content.decode()


@pytest.mark.django_db
def test_an_old_link_gets_a_clear_page(engineer, ana, backfill, protected, settings):
    run = request_on(engineer, backfill, protected)
    settings.APPROVAL_LINK_MAX_AGE_SECONDS = -1
    response = signed_in(ana).get(f"/approvals/link/{services.link_token(approval_of(run), ana)}/")
    assert response.status_code == 410 and "too old" in response.content.decode()


@pytest.mark.django_db
def test_deciding_asks_for_recent_authentication(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    pk = approval_of(run).pk
    stale = Client()
    stale.force_login(ana)  # a session with no recent password
    response = stale.post(f"/approvals/{pk}/decide/", {"decision": "approve", "comment": "ok"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert not ApprovalDecision.objects.exists()
    resumed = stale.post(response["Location"], {"password": PASSWORD})
    assert resumed.status_code in (200, 302)
    decision = ApprovalDecision.objects.get()
    assert decision.approver == ana and decision.comment == "ok"


@pytest.mark.django_db
def test_deciding_needs_the_csrf_token(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ana)
    response = browser.post(f"/approvals/{approval_of(run).pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403 and not ApprovalDecision.objects.exists()


@pytest.mark.django_db
def test_refusals_on_the_page_are_readable(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    pk = approval_of(run).pk
    own = signed_in(engineer).post(f"/approvals/{pk}/decide/", {"decision": "approve"})
    assert own.status_code == 403 and "someone else must approve" in own.content.decode()
    bad = signed_in(ana).post(f"/approvals/{pk}/decide/", {"decision": "maybe"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()
    assert not ApprovalDecision.objects.exists()


@pytest.mark.django_db
def test_the_page_shows_the_diff_against_the_last_approved_version(engineer, ana, backfill, protected):
    first = request_on(engineer, backfill, protected)
    services.decide(approval_of(first).pk, ana, True)
    backfill.save_source("print('version two')\n", author=engineer)
    second = request_on(engineer, backfill, protected)
    page = signed_in(ana).get(f"/approvals/{approval_of(second).pk}/").content.decode()
    assert '<span class="del">-print(&#x27;version one&#x27;)</span>' in page
    assert '<span class="add">+print(&#x27;version two&#x27;)</span>' in page
    third = request_on(engineer, backfill, protected)
    services.decide(approval_of(second).pk, ana, True)
    page = signed_in(ana).get(f"/approvals/{approval_of(third).pk}/").content.decode()
    assert "The same code as the last approved run (v2)" in page


@pytest.mark.django_db
def test_the_inbox_lists_what_waits_for_you(engineer, ana, make_user, backfill, protected):
    run = request_on(engineer, backfill, protected)
    inbox = signed_in(ana).get("/approvals/").content.decode()
    assert f"#{run.pk}" in inbox and "Fix the March rates" in inbox
    assert "Nothing waits for you" in signed_in(engineer).get("/approvals/").content.decode()
    assert "Nothing waits for you" in signed_in(make_user("stranger")).get("/approvals/").content.decode()


@pytest.mark.django_db
def test_the_run_page_says_it_waits_and_who_can_approve(engineer, ana, bob, backfill, protected):
    run = request_on(engineer, backfill, protected)
    page = signed_in(engineer).get(f"/runs/{run.pk}/").content.decode()
    assert "Waiting for approval" in page and "Who can approve: ana, bob." in page


# --- the API -------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_api_lists_and_decides(engineer, ana, bob, backfill, protected):
    run = request_on(engineer, backfill, protected)
    pk = approval_of(run).pk
    listed = api_for(ana).get("/api/approvals/").json()
    assert [(a["id"], a["script"], a["reason"], a["approvals_given"]) for a in listed] == [
        (pk, "currency-backfill", "Fix the March rates", 0)]
    assert api_for(engineer).get("/api/approvals/").json() == []

    assert api_for(engineer).post(f"/api/approvals/{pk}/approve/", {}, format="json").status_code == 403
    too_long = api_for(ana).post(f"/api/approvals/{pk}/approve/", {"comment": "x" * 3000}, format="json")
    assert too_long.status_code == 400 and "comment" in too_long.json()
    approved = api_for(ana).post(f"/api/approvals/{pk}/approve/", {"comment": "go"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    late = api_for(bob).post(f"/api/approvals/{pk}/reject/", {"comment": "no"}, format="json")
    assert late.status_code == 409 and "approved" in late.json()["detail"]
    assert api_for(ana).post("/api/approvals/999999/approve/", {}, format="json").status_code == 404
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_the_api_rejects_with_a_comment(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    response = api_for(ana).post(f"/api/approvals/{approval_of(run).pk}/reject/", {"comment": "not now"},
                                 format="json")
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED


# --- audit ----------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_request_and_each_decision_are_audited_once(engineer, ana, bob, backfill, protected):
    protected.approvals_needed = 2
    protected.save()
    new = NewEvents()
    run = request_on(engineer, backfill, protected)
    assert new.actions() == ["run.requested", "approval.requested"]
    new = NewEvents()
    services.decide(approval_of(run).pk, ana, True, "fine")
    approved = new.one("approval.approved")
    assert approved.actor == ana and approved.detail == {"approval": approval_of(run).pk, "comment": "fine"}
    assert (approved.object_type, approved.object_id) == ("run", str(run.pk))  # in the run page's History
    new = NewEvents()
    services.decide(approval_of(run).pk, bob, False, "no")
    assert new.actions() == ["approval.rejected", "run.finished"]


# --- the run page hears of the decision as it happens ------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_run_page_socket_hears_the_approval(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    pk = approval_of(run).pk

    async def scenario():
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run.pk}/")
        comm.scope["user"] = engineer
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["status"] == "awaiting_approval"
        await sync_to_async(services.decide)(pk, ana, True)
        pushed = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return pushed

    pushed = asyncio.run(scenario())
    assert pushed["type"] == "status" and pushed["status"] == "queued" and pushed["detail"] == "Approved."


@pytest.mark.django_db
def test_only_the_requester_withdraws_even_one_who_lost_the_right_to_run(engineer, ana, backfill, protected):
    run = request_on(engineer, backfill, protected)
    assert signed_in(ana).post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert "Withdraw the request" not in signed_in(ana).get(f"/runs/{run.pk}/").content.decode()
    engineer.groups.clear()  # no longer in engineering: may not run the script any more
    assert signed_in(engineer).post(f"/approvals/{approval_of(run).pk}/withdraw/").status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and approval_of(run).status == ApprovalStatus.WITHDRAWN


@pytest.mark.django_db
def test_a_browser_session_cannot_decide_through_the_api(engineer, ana, backfill, protected):
    """The API decides for token holders only; a session must use the page, which asks for the password."""
    run = request_on(engineer, backfill, protected)
    response = signed_in(ana).post(f"/api/approvals/{approval_of(run).pk}/approve/", {},
                                   content_type="application/json")
    assert response.status_code == 403 and "approval page" in response.json()["detail"]
    assert not ApprovalDecision.objects.exists()


@pytest.mark.django_db
def test_listing_approvers_takes_the_same_queries_for_many_people(engineer, make_user, backfill, protected,
                                                                  django_assert_max_num_queries):
    from django.test.utils import CaptureQueriesContext

    run = request_on(engineer, backfill, protected)
    request = approval_of(run)
    make_user("first", groups=["engineering"])
    with CaptureQueriesContext(connection) as few:
        assert [u.username for u in services.approvers(request)] == ["first"]
    for n in range(30):
        make_user(f"person{n:02d}", groups=["engineering"])
    with django_assert_max_num_queries(len(few)):
        assert len(services.approvers(request)) == 31
