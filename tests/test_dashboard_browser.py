"""The dashboards in a real browser (Playwright driving Chromium) against the test server, with
seeded traffic: staff see every organization and every chart renders its series; a member sees
their own organization only. Screenshots go to var/screenshots/ and must not be blank."""

from __future__ import annotations

import csv
import io
import os

import pytest
from django.contrib.auth.models import User

from billing.hourly_rollup import usage_rollup_hours
from orgs.members import organization_member_add
from orgs.services import api_key_issue
from tests.browser_helpers import SCREENSHOTS, chromium_launch, png_distinct_colours
from tests.usage_seed import seed_traffic

pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt")
from playwright.sync_api import sync_playwright  # noqa: E402

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")


@pytest.fixture
def site(transactional_db, gateway_url, alice_org, alice_key, charlie_org, charlie_key, catalog):
    api_key_issue(organization=alice_org, label="alice batch", actor="test")
    seed_traffic(alice_org, charlie_org)
    usage_rollup_hours()
    User.objects.create_superuser("olivia", "o@example.com", "olivia-pw")
    organization_member_add(organization=alice_org, username="bob", password="bob-pw", actor="test")
    # Playwright's sync API runs an event loop in this thread; the ORM is not used while it runs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield gateway_url
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def login(page, url, username, password):
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def rendered(page, name) -> list[str]:
    page.wait_for_selector(f"canvas[data-chart='{name}'][data-rendered='1']")
    return page.evaluate(f"window.dashboardCharts['{name}'].data.datasets.map(d => d.label)")


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert png_distinct_colours(path) > 40, f"{path} looks blank"


def test_staff_see_every_organization_and_follow_charts_to_the_ledger(site, tmp_path):
    with sync_playwright() as p:
        browser = chromium_launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        login(page, site, "olivia", "olivia-pw")
        page.wait_for_url(f"{site}/dashboard/")
        assert set(rendered(page, "spend")) == {"alice", "charlie"}
        assert rendered(page, "traffic") == ["Requests", "Errors", "Error rate %"]
        assert page.locator("text=Top organizations by spend").is_visible()
        # Money ticks read as money, not as the float sums Chart.js steps through.
        labels = page.evaluate("""() => { const c = window.dashboardCharts.spend.options.scales.y.ticks.callback;
            return [c(0.000049999999999999996), c(0.30000000000000004), c(12)]; }""")
        assert labels == ["$0.00005", "$0.3", "$12"]
        screenshot(page, "overview")

        page.click("a.preset[data-range='30d']")
        page.wait_for_url("**range=30d**")
        page.select_option("select[name=org]", "alice")
        page.click("button:has-text('Apply')")
        page.wait_for_url("**org=alice**")
        assert "range=30d" in page.url
        assert set(rendered(page, "spend")) == {"alice"}
        page.click(".switch a:has-text('model')")  # stack by model, filters kept
        page.wait_for_url("**stack=model**")
        assert set(rendered(page, "spend")) == {"mock-echo", "gpt-4o"} and "org=alice" in page.url

        # Click the last bar of the first series: the ledger rows behind it.
        box = page.locator("canvas[data-chart='spend']").bounding_box()
        x, y = page.evaluate("""() => { const c = window.dashboardCharts.spend; const m = c.getDatasetMeta(0);
            const bar = m.data[m.data.length - 1]; return [bar.x, (bar.y + bar.base) / 2]; }""")
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_url("**/dashboard/ledger/**")
        assert "at=" in page.url and "model=" in page.url and "org=alice" in page.url
        assert page.locator("table.ledger tbody tr").count() > 0
        assert "dm_charlie_" not in page.content()
        screenshot(page, "ledger")

        page.goto(f"{site}/dashboard/orgs/alice/?range=7d")
        assert set(rendered(page, "spend")) == {"mock-echo", "gpt-4o"}
        assert rendered(page, "by_model") == ["Spend (USD)"]
        screenshot(page, "organization")
        with page.expect_download() as download:
            page.click("text=Export CSV")
        rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
        assert rows and {r["organization"] for r in rows} == {"alice"}

        page.click("table.data a code >> nth=0")  # a key page
        page.wait_for_url("**/keys/**")
        assert rendered(page, "traffic")
        screenshot(page, "key")

        # Issue a key through the admin form: shown once.
        page.goto(f"{site}/admin/orgs/apikey/add/")
        page.select_option("select[name=organization]", label="Alice's App (alice)")
        page.fill("input[name=label]", "browser test")
        page.click("input[type=submit], button[type=submit] >> nth=-1")
        plaintext = page.locator("#plaintext-1").inner_text()
        assert plaintext.startswith("dm_alice_")
        page.goto(f"{site}/admin/orgs/apikey/")
        assert plaintext not in page.content()
        browser.close()


def test_a_member_sees_their_organization_only(site):
    with sync_playwright() as p:
        browser = chromium_launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        login(page, site, "bob", "bob-pw")
        page.wait_for_url("**/dashboard/orgs/alice/**")
        assert set(rendered(page, "spend")) == {"mock-echo", "gpt-4o"}
        html = page.content()
        assert "dm_alice_" in html and "charlie" not in html and "Admin" not in page.locator("header").inner_text()
        screenshot(page, "member")
        assert page.goto(f"{site}/dashboard/orgs/charlie/").status == 404
        assert page.goto(f"{site}/dashboard/ledger/?org=charlie").status == 404
        page.goto(f"{site}/admin/")
        assert "/admin/login/" in page.url  # never the admin
        browser.close()
