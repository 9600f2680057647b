"""report.html in a real headless Chromium: it loads, logs no console error, and every image decodes
and takes space on the page. Chromium missing is a failure (``make browser`` installs it), never a skip."""

from __future__ import annotations

import pytest

from ggufprof.present.report import write_report
from ggufprof.present.report.browser import BrowserMissing, images, open_chromium, severe_console_entries


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    try:
        drv = open_chromium(tmp_path_factory.mktemp("chromium-profile"))
    except BrowserMissing as e:
        pytest.fail(f"headless Chromium is needed for this test: {e}", pytrace=False)
    yield drv
    drv.quit()


@pytest.mark.parametrize("name", ["llama-gqa", "gemma3-swa"])
def test_report_renders_in_chromium(driver, sweep_dirs, tmp_path, name):
    html = write_report([sweep_dirs[name]], tmp_path)["html"]
    driver.get(html.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title.startswith("ggufprof report")
    assert driver.execute_script("return document.querySelectorAll('table').length") >= 3
    assert severe_console_entries(driver) == []
    imgs = images(driver)
    assert len(imgs) >= 2
    assert any(img["alt"] == "By cache type" for img in imgs)  # drawn whatever else varies in the sweep
    for img in imgs:
        assert img["complete"] and img["naturalWidth"] > 0, img
        assert img["width"] > 0 and img["height"] > 0, img
    # no request may leave the page: every resource is a data: URI
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("data:") for u in urls), urls
