"""/api/ai/docs/ in a real browser (Playwright driving Debian's Chromium): Swagger UI renders the
document with the endpoints listed, and every request the page makes goes to the gateway itself
(the sidecar's assets, the document): nothing from a CDN or any other host."""

from __future__ import annotations

import pytest

from tests.browser_helpers import SCREENSHOTS, chromium_launch, png_distinct_colours

pytest.importorskip("playwright.sync_api", reason="playwright is in requirements.txt")
from playwright.sync_api import sync_playwright  # noqa: E402


def test_it_renders_every_endpoint_from_the_gateway_alone(transactional_db, gateway_url):
    requested: list[str] = []
    with sync_playwright() as p:
        browser = chromium_launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda request: requested.append(request.url))
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{gateway_url}/api/ai/docs/")
        page.wait_for_selector(".opblock-summary-path", timeout=15000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
        assert {"/api/ai/chat/completions", "/api/ai/anthropic/v1/messages",
                "/api/ai/anthropic/v1/messages/count_tokens",
                "/api/ai/models", "/api/ai/usage", "/api/ai/health"} <= set(paths), paths
        assert page.locator(".info .title").inner_text().startswith("AI gateway API")
        # The security schemes are offered for "Authorize".
        assert page.locator("button.authorize").is_visible()

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        listing = SCREENSHOTS / "api-docs-list.png"
        page.screenshot(path=str(listing), full_page=True)

        # Open one operation: its request example and responses render from the components.
        page.click("#operations-OpenAI_format-chat_completions .opblock-summary")
        page.wait_for_selector("#operations-OpenAI_format-chat_completions .responses-table")
        assert "mock-echo" in page.locator("#operations-OpenAI_format-chat_completions").inner_text()

        shot = SCREENSHOTS / "api-docs.png"
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    for path in (listing, shot):
        assert png_distinct_colours(path) > 40, f"{path} looks blank"
    assert not failed, failed
    outside = [url for url in requested if not url.startswith(gateway_url + "/")]
    assert not outside, f"the docs page loaded resources from elsewhere: {outside}"
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in url for url in requested)
    assert f"{gateway_url}/api/ai/openapi.json" in requested
