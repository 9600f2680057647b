"""Open a report in headless Debian Chromium (selenium): for the browser test and the screenshot script.

Why in the package: the test and scripts/screenshot_report.py must open the page the same way
(the same flags, no network, console logs on). selenium is a dev dependency, imported only here
and only when called; ``make browser`` installs chromium and chromedriver.
"""

from __future__ import annotations

import base64
from pathlib import Path

from ...results import files

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run")

IMAGES_JS = """
return Array.from(document.images).map(img => {
  const r = img.getBoundingClientRect();
  return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, width: r.width, height: r.height};
});
"""


class BrowserMissing(RuntimeError):
    pass


def open_chromium(user_data_dir: Path, width: int = 1280, height: int = 900):
    """A headless Chromium WebDriver with browser console logging; BrowserMissing names the fix."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise BrowserMissing(f"{', '.join(missing)} not found: run `make browser` (installs Debian's chromium "
                             "and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={user_data_dir}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))


def images(driver) -> list[dict]:
    """Every <img>: whether it decoded (naturalWidth) and its rendered box."""
    return driver.execute_script(IMAGES_JS)


def severe_console_entries(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def full_page_png(driver, path: Path, width: int = 1280, max_height: int | None = None) -> Path:
    """The whole page at ``width`` CSS pixels (device scale 1), cut at ``max_height`` when given."""
    driver.execute_script("document.documentElement.style.overflow = 'hidden'")  # no scrollbar in the picture
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    if max_height:
        height = min(height, max_height)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
    files.write_file(path, base64.b64decode(shot["data"]))
    return path
