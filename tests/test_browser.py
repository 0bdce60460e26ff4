"""The newcomer's journey in a real browser: sign in, run hello on staging, watch it live."""

import re

import pytest
from playwright.sync_api import expect

from runs.management.commands.seed_demo import DEMO_PASSWORD

pytestmark = [pytest.mark.browser]


def test_newcomer_runs_hello_and_watches_it_live(demo_stack, page):
    page.goto(demo_stack.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=login]", "engineer")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Tools")

    page.click("text=Hello")
    expect(page.locator("h1")).to_have_text("Hello")
    page.select_option("select[name=environment]", label="Staging")
    page.fill("input[name=p-name]", "Newcomer")
    page.click("button:has-text('Run')")

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    log = page.locator("#log")
    expect(log).to_contain_text("Hello, Newcomer!", timeout=20_000)
    # the first lines are on screen while the script is still running
    expect(page.locator("#run-status")).to_have_text("Running")
    assert "All done." not in log.inner_text()
    expect(log).to_contain_text("step 3/5", timeout=20_000)
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(log).to_contain_text("All done.")
    expect(page.locator("#run-exit-code")).to_have_text("0")
    expect(page.locator("#run-duration")).to_have_text(re.compile(r"\d+\.\d s"))
    # secrets are masked; ANSI colours are rendered, not shown as escape codes
    expect(log).to_contain_text("gives me is ********.")
    assert "[1;32m" not in log.inner_text()
    assert log.locator("span[style*='color']").count() > 0

    with page.expect_download() as download_info:
        page.click("text=Download the whole log")
    with open(download_info.value.path()) as f:
        text = f.read()
    assert "Hello, Newcomer!" in text and "All done." in text

    page.reload()  # a finished run renders whole from the server
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(log).to_contain_text("All done.")


def test_an_approver_follows_the_emailed_link_approves_and_the_run_succeeds(demo_stack, page):
    """ops asks to run hello on production (it needs one approval); engineer approves from the email."""
    import json
    import urllib.request

    from django.contrib.auth import get_user_model

    from scripts_app.models import ApiToken

    key = ApiToken.issue(get_user_model().objects.get(username="ops"), "journey")[1]
    body = json.dumps({"script": "hello", "environment": "production", "params": {"name": "Approver"},
                       "reason": "Greet the approver"}).encode()
    request = urllib.request.Request(demo_stack.url + "/api/runs/", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        run = json.load(response)
    assert run["status"] == "awaiting_approval"

    message = demo_stack.mail.wait_for("engineer@example.com", "ops wants to run Hello on Production")
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"http://\S+/approvals/link/\S+/", text).group(0)

    page.goto(link)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=login]", "engineer")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("ops wants to run Hello on Production")
    expect(page.locator("#code")).to_contain_text("Hello, {name}")
    expect(page.locator("main")).to_contain_text("Greet the approver")
    page.fill("textarea[name=comment]", "Go ahead")
    page.click("button[value=approve]")

    # deciding on production asks for the password again
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/"))
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator("#approval-status")).to_have_text("Approved")

    page.click(f"a[href='/runs/{run['id']}/']")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#log")).to_contain_text("Hello, Approver!")
    decision = demo_stack.mail.wait_for("ops@example.com", "was approved")
    assert "Go ahead" in decision.get_body(preferencelist=("plain",)).get_content()


def test_an_admin_builds_a_form_with_a_conditional_field_and_sees_the_preview_change(demo_stack, page):
    page.goto(demo_stack.url + "/admin/login/?next=/admin/ui_builder/formdefinition/add/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.select_option("select[name=script]", label="Ticker")
    preview = page.locator("#form-preview")
    expect(preview).to_contain_text("No fields yet")

    page.click(".add-row a")
    page.fill("input[name=fields-0-name]", "mode")
    page.fill("input[name=fields-0-label]", "How fast")
    page.select_option("select[name=fields-0-type]", "choice")
    page.fill("textarea[name=fields-0-choices]", "fast | Quickly\nslow | Slowly, with pauses")
    expect(preview.locator("select[name=p-mode]")).to_be_visible()
    expect(preview).to_contain_text("How fast")

    page.click(".add-row a")
    page.fill("input[name=fields-1-name]", "pause")
    page.fill("input[name=fields-1-label]", "Seconds between ticks")
    page.select_option("select[name=fields-1-type]", "integer")
    page.fill("input[name=fields-1-order]", "2")
    page.fill("input[name=fields-1-visible_if_field]", "mode")
    page.fill("input[name=fields-1-visible_if_value]", "slow")
    pause = preview.locator("[data-field=pause]")
    expect(pause).to_be_attached()
    expect(pause).to_be_hidden()
    preview.locator("select[name=p-mode]").select_option("slow")
    expect(pause).to_be_visible()
    preview.locator("select[name=p-mode]").select_option("fast")
    expect(pause).to_be_hidden()

    page.fill("input[name=fields-1-visible_if_field]", "speed")  # names no field: the preview says so
    expect(preview).to_contain_text("names a field that is not in this form")
    page.fill("input[name=fields-1-visible_if_field]", "mode")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def test_an_ops_user_fills_a_form_corrects_an_error_confirms_and_the_run_starts(demo_stack, page):
    from scripts_app.models import Environment

    Environment.objects.filter(slug="production").update(approval_required=False)  # confirmation only
    page.goto(demo_stack.url + "/scripts/campaign-currency-backfill/")
    page.fill("input[name=login]", "ops")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator(".intro")).to_contain_text("Converts the budgets")

    page.select_option("select[name=p-tenant]", label="Globex")
    page.fill("input[name=p-start]", "2026-03-01")
    page.fill("input[name=p-end]", "2026-03-31")
    ids = page.locator("[data-field=campaign_ids]")
    expect(ids).to_be_hidden()
    page.check("input[name=p-only_some]")
    expect(ids).to_be_visible()
    page.fill("textarea[name=p-campaign_ids]", "179, 182\n182, 5")  # Globex's, in March (5 is not)
    page.check("input[name=p-currency][value=USD]")
    page.fill("input[name=p-batch_size]", "50")
    page.fill("textarea[name=reason]", "Fix Globex budgets")
    page.click("button:has-text('Run')")

    batch = page.locator("[data-field=batch_size]")
    expect(batch).to_contain_text("greater than or equal to 100")
    page.fill("input[name=p-batch_size]", "200")
    page.click("button:has-text('Run')")

    confirmation = page.locator("#confirmation")
    expect(confirmation).to_contain_text("Campaign currency backfill")
    expect(confirmation).to_contain_text("on Production")
    for text in ("Globex", "2026-03-01", "179, 182, 5 (3)", "US dollar", "200"):
        expect(confirmation).to_contain_text(text)
    page.click("button:has-text('Yes, run it on Production')")

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    log = page.locator("#log")
    expect(log).to_contain_text("Tenant globex: campaigns from 2026-03-01 to 2026-03-31 into USD", timeout=20_000)
    expect(log).to_contain_text("converted campaigns 179..182 (2)", timeout=20_000)
    expect(log).to_contain_text("Done: 2 campaigns in 1 batches")
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=20_000)
