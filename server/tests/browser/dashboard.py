"""Drives the dashboard in headless Chromium (selenium + chromedriver).

Called by tests/browser.rs with a watcher already running:
    python dashboard.py <base url> <admin key> <screenshot dir> <host> [<host>...]

Logs in through the form, checks the hosts are listed, creates a silence
through the form and checks the dashboard shows it, and saves screenshots
(desktop light and dark, phone). Exits non-zero with a reason on the first
thing that is not as expected.
"""

import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def full_page(driver, path, width):
    """Resizes the window to the page's height (bounded) and saves it."""
    driver.set_window_size(width, 900)
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    time.sleep(0.2)
    check(driver.save_screenshot(path), f"could not save {path}")
    print(f"screenshot: {path}")


def main():
    if len(sys.argv) < 5:
        fail("usage: dashboard.py <base url> <key> <screenshot dir> <host>...")
    base, key, out, hosts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(out, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("IAMALIVE_TEST_CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    service = Service(os.environ.get("IAMALIVE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(WAIT_S)
    wait = WebDriverWait(driver, WAIT_S)
    try:
        # Before login: the login form, and nothing about any host.
        driver.get(base + "/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
        check(driver.current_url.endswith("/login"), f"not sent to the login page: {driver.current_url}")
        for h in hosts:
            check(h not in driver.page_source, f"{h} is shown before login")
        full_page(driver, os.path.join(out, "login.png"), 1280)

        # A wrong key is an error on the form.
        field = driver.find_element(By.CSS_SELECTOR, "input[type=password]")
        field.send_keys("wrong-key-0123456789")
        field.submit()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.error")))
        check("not accepted" in driver.page_source, "no error for a wrong key")

        # Login.
        field = driver.find_element(By.CSS_SELECTOR, "input[type=password]")
        field.send_keys(key)
        field.submit()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.hosts")))
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "td.host strong")]
        for h in hosts:
            check(h in names, f"{h} is not listed after login: {names}")
        rows = driver.find_elements(By.CSS_SELECTOR, "table.hosts tbody tr")
        first = rows[0].get_attribute("class")
        check(first in ("r-alarmed", "r-missing"), f"problems are not first: the first row is {first}")
        seen = driver.find_element(By.CSS_SELECTOR, "td[data-label='Last seen'] time")
        check(seen.get_attribute("title").endswith("UTC"), "no exact time on hover")
        full_page(driver, os.path.join(out, "dashboard.png"), 1280)

        # An action from a host's menu: resume the paused host.
        paused = driver.find_element(By.CSS_SELECTOR, "tr.r-paused")
        name = paused.find_element(By.CSS_SELECTOR, "td.host strong").text
        paused.find_element(By.CSS_SELECTOR, "details.actions > summary").click()
        driver.set_window_size(1280, 1100)
        driver.save_screenshot(os.path.join(out, "actions-menu.png"))
        paused.find_element(By.XPATH, ".//button[normalize-space()='Resume watching']").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        flash = driver.find_element(By.CSS_SELECTOR, ".flash.ok").text
        check(flash == f"{name} is watched again.", f"resume did not say so: {flash!r}")
        check(not driver.find_elements(By.CSS_SELECTOR, "tr.r-paused"), "the host is still paused")

        # A silence through the form.
        target = hosts[0]
        driver.get(base + "/silences?hosts=" + target)
        wait.until(ec.presence_of_element_located((By.ID, "silence-submit")))
        check(driver.find_element(By.ID, "hosts").get_attribute("value") == target,
              "the silence form is not filled in with the host")
        dur = driver.find_element(By.ID, "for")
        dur.clear()
        dur.send_keys("3h")
        driver.find_element(By.ID, "reason").send_keys("replacing the RAID controller")
        driver.find_element(By.ID, "silence-submit").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        check("replacing the RAID controller" in driver.page_source, "the new silence is not listed")
        full_page(driver, os.path.join(out, "silences.png"), 1280)

        driver.get(base + "/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.hosts")))
        row = None
        for r in driver.find_elements(By.CSS_SELECTOR, "table.hosts tbody tr"):
            if r.find_element(By.CSS_SELECTOR, "td.host strong").text == target:
                row = r
        check(row is not None, f"{target} is gone from the dashboard")
        text = row.text
        check("silenced until" in text and "replacing the RAID controller" in text,
              f"the silence does not show on {target}'s row: {text!r}")
        full_page(driver, os.path.join(out, "dashboard-silenced.png"), 1280)

        # Dark mode and a phone.
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        driver.get(base + "/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.hosts")))
        full_page(driver, os.path.join(out, "dashboard-dark.png"), 1280)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        driver.get(base + "/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.hosts")))
        full_page(driver, os.path.join(out, "dashboard-phone.png"), 390)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        check(overflow <= 0, f"the phone layout scrolls sideways by {overflow}px")

        # The public status page, without a session.
        driver.delete_all_cookies()
        driver.set_window_size(1280, 900)
        driver.get(base + "/status/ungrouped")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".banner")))
        check("hosts silent" in driver.find_element(By.CSS_SELECTOR, ".banner").text,
              "the status page does not say hosts are silent")
        check("RAID" not in driver.page_source, "a silence reason is on the public page")
        full_page(driver, os.path.join(out, "status-page.png"), 1280)
        print("ok: login, hosts listed, silence created through the form and shown")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
