"""`pairforge serve` in headless Chromium: upload a photo, see A and G(A); draw a stroke, see G(A) change.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium; the
browser is never downloaded at run time (Selenium Manager is kept offline).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pairforge.commands.serve import load_run_model
from pairforge.serve import BackgroundServer, PageServer, ServeConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not found: install Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver; .ci/run does it)",
)]
SIZE = 64


@pytest.fixture(scope="module")
def url(tiny_edges_run: Path) -> Iterator[str]:
    model = load_run_model(str(tiny_edges_run), device="cpu")
    with BackgroundServer(PageServer(model, ServeConfig(port=0))) as address:
        yield address


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1100,900", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wanted_now(driver: Any) -> str | None:
    """The page's latest request id (``data-wanted``), to wait for a later one after an action."""
    return driver.find_element("tag name", "body").get_attribute("data-wanted")


def wait_for_settled_output(driver: Any, timeout: float = 60, after: str | None = None) -> str:
    """Wait until the output answers the page's latest change; returns the output PNG's checksum.

    ``after``: the request id seen before an action; the wait then also needs a newer request
    (the action's own), so an answer to an earlier request is never taken for it.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    def changed(d: Any) -> str | bool:
        output = d.find_element("id", "output")
        wanted = wanted_now(d)
        settled = wanted is not None and wanted != after and output.get_attribute("data-answered") == wanted
        return output.get_attribute("data-checksum") if settled else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(changed)
    except Exception:
        status = driver.find_element("id", "status").text
        seed = driver.find_element("id", "seed").text
        raise AssertionError(f"the output did not change (page status: {status!r}, {seed})") from None


def canvas_pixels(driver: Any) -> np.ndarray:
    data = driver.execute_script(
        "const c = document.getElementById('canvas');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
    height, width = driver.execute_script("const c = document.getElementById('canvas'); return [c.height, c.width];")
    return np.array(data, np.uint8).reshape(height, width, 4)


def test_upload_then_draw_updates_the_output(url: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from skimage import data

    browser.get(url)
    first = wait_for_settled_output(browser)  # the blank canvas is predicted on load
    assert "00001-pix2pix" in browser.find_element("id", "run-facts").text
    assert [b.text for b in browser.find_elements("css selector", "#tools button")] == ["Pen", "Eraser"]

    photo = tmp_path / "chelsea.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    assert browser.find_element("id", "upload-mode").get_attribute("value") == "photo"
    before = wanted_now(browser)
    browser.find_element("id", "file").send_keys(str(photo))
    uploaded = wait_for_settled_output(browser, after=before)
    assert uploaded != first
    a = canvas_pixels(browser)
    assert a.shape == (300, 451, 4)  # A built with the run's recipe at the photo's own size, as predict --from-photos
    assert (a[..., 0] == 0).mean() > 0.02 and (a[..., 0] == 255).mean() > 0.5  # black edges on white
    assert browser.find_element("id", "status").text == ""

    canvas = browser.find_element("id", "canvas")
    before = wanted_now(browser)
    ActionChains(browser).move_to_element_with_offset(canvas, -120, -120).click_and_hold() \
        .move_by_offset(120, 60).move_by_offset(100, 100).release().perform()
    drawn = wait_for_settled_output(browser, after=before)
    after = canvas_pixels(browser)
    assert (after[..., 0] != a[..., 0]).sum() > 20  # the stroke is on the canvas
    assert drawn != uploaded

    # Sample again: a new dropout seed, answered (its output may equal the last one on this
    # 2-step model, whose dropout barely moves the uint8 output)
    before = wanted_now(browser)
    browser.find_element("id", "sample").click()
    wait_for_settled_output(browser, after=before)
    seed = browser.find_element("id", "output").get_attribute("data-seed")
    assert seed != "0" and browser.find_element("id", "seed").text == f"seed {seed}"
    browser.save_screenshot(str(tmp_path / "serve.png"))
    assert (tmp_path / "serve.png").stat().st_size > 10_000


def test_a_bad_upload_shows_the_servers_message(url: str, browser: Any, tmp_path: Path) -> None:
    browser.get(url)
    wait_for_settled_output(browser)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    browser.find_element("id", "file").send_keys(str(bad))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: "error" in d.find_element("id", "status").get_attribute("class"))
    status = browser.find_element("id", "status")
    assert "notes.png: upload: not an image" in status.text and "error" in status.get_attribute("class")
