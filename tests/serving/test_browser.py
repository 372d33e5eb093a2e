"""The web page in a real headless Chromium: search, add tracks, ask, see recommendations.

And the API's documentation page, in a Chromium that can reach no host but 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from songrec.config.stage_configs import ServeConfig
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.store.request_log import EventStore
from tests.serving.conftest import MemorySource, chromium, running_server

pytestmark = pytest.mark.slow


@pytest.fixture
def page_app(serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore) -> FastAPI:
    return create_app(serve_config, model_source=MemorySource({"1": bundle}, "1"), events=events)


def test_search_add_tracks_and_get_recommendations(browser, page_app: FastAPI, bundle: SongrecBundle) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    artist = str(bundle.catalog["track_artist"].value_counts().index[0])
    wait = WebDriverWait(browser, 20)
    with running_server(page_app) as url:
        browser.get(f"{url}/")
        assert browser.title == "songrec"
        assert browser.find_element(By.ID, "model-version").text == "1"
        assert browser.find_element(By.ID, "recommend-button").get_attribute("disabled") is not None

        box = browser.find_element(By.ID, "search-input")
        box.send_keys(artist)
        browser.find_element(By.ID, "search-button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results button.add"))
        results = browser.find_elements(By.CSS_SELECTOR, "#search-results li")
        assert artist in results[0].text
        for button in browser.find_elements(By.CSS_SELECTOR, "#search-results button.add")[:3]:
            button.click()
        playlist = browser.find_elements(By.CSS_SELECTOR, "#playlist li")
        assert len(playlist) == 3
        assert browser.find_element(By.ID, "playlist-count").text == "(3)"
        added = [item.get_attribute("data-track-id") for item in playlist]

        k = browser.find_element(By.ID, "k-input")
        k.clear()
        k.send_keys("6")
        browser.find_element(By.ID, "recommend-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "recommendations-section")))
        rows = browser.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")
        assert len(rows) == 6
        recommended = [row.get_attribute("data-track-id") for row in rows]
        assert not set(recommended) & set(added)  # never the playlist's own tracks
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert first[0].text == "1" and first[3].text in bundle.genres
        assert 0.0 <= float(first[4].text) <= 1.0
        link = rows[0].find_element(By.TAG_NAME, "a").get_attribute("href")
        assert link == f"https://open.spotify.com/track/{recommended[0]}"

        wait.until(ec.visibility_of_element_located((By.ID, "predictions-section")))
        predictions = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
        assert len(predictions) == 3
        cells = predictions[0].find_elements(By.TAG_NAME, "td")
        assert cells[1].text in bundle.genres and 0 <= float(cells[3].text) <= 100

        rows[0].find_element(By.CSS_SELECTOR, "button.like").click()  # feedback joins the request
        wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")[0].text.endswith("liked")
        )
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None

        # One track per artist on the page: ten recommendations, ten artists.
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element(By.ID, "artist-cap")).select_by_value("1")
        k.clear()
        k.send_keys("10")
        browser.find_element(By.ID, "recommend-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")) == 10)
        artists = [
            row.find_elements(By.TAG_NAME, "td")[2].text
            for row in browser.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")
        ]
        assert len(set(artists)) == 10, artists


def test_the_page_shows_the_apis_message_for_a_bad_request(browser, page_app: FastAPI) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with running_server(page_app) as url:
        browser.get(f"{url}/")
        browser.execute_script(
            "document.getElementById('search-input').removeAttribute('maxlength');"
            "document.getElementById('search-input').value = 'x'.repeat(300);"
        )
        browser.find_element(By.ID, "search-button").click()
        error = WebDriverWait(browser, 20).until(ec.visibility_of_element_located((By.ID, "error")))
        assert error.text.startswith("q: String should have at most 200 characters")


@pytest.fixture
def offline_browser() -> Iterator[object]:
    """Headless Chromium that resolves no host name but 127.0.0.1, and logs every request it makes."""
    with chromium(
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-proxy-server", log_requests=True
    ) as driver:
        yield driver


def _requested_urls(browser) -> list[str]:  # type: ignore[no-untyped-def]
    """Every URL the page asked for: its resource timing entries and Chromium's network log."""
    urls = list(
        browser.execute_script(
            "return ['navigation', 'resource'].flatMap(t => performance.getEntriesByType(t)).map(e => e.name)"
        )
    )
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _elsewhere(urls: list[str], base: str) -> list[str]:
    """The URLs that went (or tried to go) anywhere but the test server."""
    return [u for u in urls if not (u.startswith(base + "/") or u.split(":", 1)[0] in ("data", "blob"))]


def test_the_api_docs_render_offline(offline_browser, page_app: FastAPI) -> None:  # type: ignore[no-untyped-def]
    """/docs lists the operations with no internet, and asks no host but the server for anything."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = offline_browser
    wait = WebDriverWait(browser, 30)
    with running_server(page_app) as url:
        with pytest.raises(WebDriverException, match="ERR_NAME_NOT_RESOLVED"):
            browser.get("https://example.com/")  # the network is cut
        browser.get_log("performance")  # forget that attempt

        browser.get(f"{url}/docs")
        recommend = '.opblock.opblock-post .opblock-summary-path[data-path="/recommend"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, recommend))
        block = browser.find_element(
            By.XPATH, '//*[contains(@class, "opblock-post")][.//*[@data-path="/recommend"]]'
        )
        assert block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text == "POST"
        paths = {
            e.get_attribute("data-path")
            for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        }
        assert {"/recommend", "/predict/genre", "/tracks", "/feedback", "/health"} <= paths
        assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("songrec")
        requested = _requested_urls(browser)
        assert f"{url}/docs/assets/swagger-ui-bundle.js" in requested
        assert f"{url}/openapi.json" in requested
        assert not _elsewhere(requested, url)
