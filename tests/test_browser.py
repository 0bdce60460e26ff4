"""The newcomer's journey in a real browser: sign in, run hello on staging, watch it live."""

import re

import pytest
from playwright.sync_api import expect

from scripts_app.management.commands.seed_demo import DEMO_PASSWORD

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
    page.fill("textarea[name=params]", '{"name": "Newcomer"}')
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
