"""The console in a real browser: Debian's headless chromium, driven by Selenium through
chromium-driver, against `wastatus up` (its web server and worker) on loopback, fed real
failures through the signed webhook.

Selenium Manager is never asked for anything (it would download a driver): the driver and the
browser are Debian's, named by path. Set CONSOLE_SCREENSHOTS=docs/screenshots to refresh the
README's screenshots from this run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from bench._receiver import Reply
from tests.conftest import APP_SECRET
from tests.processes import clean_env, spawn, terminate, wait_for_http
from webhook.cli.redis_server import free_port
from webhook.signature import sign

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = "chromium chromium-driver fonts-noto-cjk"
PHONE_NUMBER_ID = "106540352242922"


def require_browser() -> None:
    """Fail (never skip) with the apt line when the browser or its driver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y {PACKAGES}")
    fonts = (
        subprocess.run(["fc-list"], capture_output=True, text=True, check=False).stdout
        if shutil.which("fc-list")
        else ""
    )
    if "Noto Sans CJK" not in fonts:
        pytest.fail(f"Japanese fonts missing (Noto Sans CJK): apt-get install -y {PACKAGES}")


@pytest.fixture
def service(redis, redis_url, tmp_path, receiver):
    """`wastatus up` (web server and worker) on this Redis, console credentials of its own
    making, alerts to a loopback receiver failing them (so a notification becomes a dead letter
    after one try) until the test says otherwise; yields its address and the admin password it
    generated."""
    receiver.default = Reply(503)
    port = free_port()
    env = clean_env(
        tmp_path,
        REDIS_URL=redis_url,
        WASTATUS_APP_SECRET=APP_SECRET,
        WASTATUS_PUBLIC_URL=f"http://127.0.0.1:{port}",
        WASTATUS_GROUP_WAIT="0",
        WASTATUS_ALERT_WEBHOOK_URL=f"{receiver.url}/alerts",
        WASTATUS_GROUP_INTERVAL="1s",
        WASTATUS_ALERT_ATTEMPTS="1",
        WASTATUS_TRACK_MESSAGES="72h",
        WEB_CONCURRENCY="1",
    )
    log = tmp_path / "up.log"
    up = spawn(["up", "--port", str(port)], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, up, log)
        password = (tmp_path / "data" / "console_password").read_text().strip()
        assert f"user admin, password {password}" in log.read_text()
        yield base, password
    finally:
        terminate(up)


@pytest.fixture
def chrome(tmp_path):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def post_failures(base: str, code: int, count: int = 1) -> None:
    """Cloud API failures, signed as Meta signs them."""
    statuses = [{"id": f"wamid.{uuid.uuid4().hex}", "recipient_id": f"8180000{i:05d}",
                 "status": "failed", "timestamp": str(int(time.time())),
                 "errors": [{"code": code, "title": "failed"}]} for i in range(count)]  # fmt: skip
    post_statuses(base, statuses)


def campaign_status(wamid: str, name: str, code: int | None = None) -> dict:
    """A status of a message of campaign (tracker) spring-sale, with its pricing."""
    found = {"id": wamid, "recipient_id": "818000099999", "status": name,
             "timestamp": str(int(time.time())), "biz_opaque_callback_data": "spring-sale",
             "pricing": {"category": "marketing", "type": "regular", "billable": True},
             "conversation": {"id": "c1", "origin": {"type": "marketing"}}}  # fmt: skip
    if code is not None:
        found["errors"] = [{"code": code, "title": "failed"}]
    return found


def post_statuses(base: str, statuses: list[dict]) -> None:
    """Cloud API statuses, signed as Meta signs them."""
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "phone_number_id": PHONE_NUMBER_ID, "display_phone_number": "15550001111"},
            "statuses": statuses}}]}]}).encode()  # fmt: skip
    reply = requests.post(
        f"{base}/webhook",
        data=body,
        timeout=10,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET), "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout}s: {what}")


def follow(driver, element) -> None:
    """Click `element` and wait until the page it leads to has replaced this one."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            # chromium may say so in its own words while the old document goes away
            if "does not belong to the document" in (error.msg or ""):
                return True
            raise
        return False

    element.click()
    WebDriverWait(driver, 20).until(replaced)


def screenshot(driver, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


class TestInBrowser:
    """An operator in chromium: log in, open a group, silence it, replay, switch to English."""

    def test_operator_walkthrough(self, service, chrome, redis, receiver, tmp_path):
        from selenium.webdriver.common.by import By

        base, password = service
        post_failures(base, 131049, 30)
        post_failures(base, 131026, 2)
        post_statuses(base, [campaign_status(f"wamid.sale{i}", "sent") for i in range(3)]
                      + [campaign_status("wamid.sale9", "failed", 131047)])  # fmt: skip
        post_statuses(base, [campaign_status("wamid.sale0", "delivered")])
        post_statuses(base, [campaign_status("wamid.sale0", "read")])
        # three groups (131049, 131026, the campaign's 131047): the 131049 one must have died
        wait_for(lambda: any(r.status == 503 and b"code=131049" in r.body
                             for r in receiver.requests), "the 131049 firing refused")  # fmt: skip
        wait_for(lambda: redis.zcard("wastatus:dead:index") >= 3, "the three dead-lettered")
        receiver.default = Reply(200)  # the receiver recovers: the next notification goes
        post_failures(base, 131049, 1)
        wait_for(lambda: any(r.status == 200 and b"code=131049" in r.body
                             for r in receiver.requests), "the 131049 update")  # fmt: skip

        chrome.get(f"{base}/console/")
        assert "/console/login" in chrome.current_url
        chrome.find_element(By.ID, "username").send_keys("admin")
        chrome.find_element(By.ID, "password").send_keys(password)
        follow(chrome, chrome.find_element(By.ID, "login"))
        assert chrome.current_url.rstrip("/").endswith("/console")
        assert "概要" in chrome.find_element(By.TAG_NAME, "h1").text
        assert chrome.find_elements(By.CSS_SELECTOR, "svg.chart rect")
        screenshot(chrome, tmp_path, "overview-ja")

        link = next(a for a in chrome.find_elements(By.CLASS_NAME, "group-link")
                    if "131049" in a.text)  # fmt: skip
        follow(chrome, link)
        group_page = chrome.current_url
        assert chrome.find_element(By.ID, "group-count").text == "31"
        recipients = [td.text for td in chrome.find_elements(By.CLASS_NAME, "recipient")]
        assert len(recipients) == 25 and all(r.startswith("*") for r in recipients)
        # the update went to the recovered receiver, the first notification died at it
        sent = chrome.find_elements(By.CSS_SELECTOR, "#notifications tr.notification")
        # (a loaded machine may drain the 30 in two batches: an update that died comes between)
        kinds = [row.find_element(By.CLASS_NAME, "kind").text for row in sent]
        assert kinds[0] == "update" and kinds[-1] == "firing" and len(kinds) <= 3, kinds
        states = [row.find_element(By.CLASS_NAME, "notification-state").text for row in sent]
        assert states[0] == "delivered" and set(states[1:]) == {"dead"}, states
        assert "webhook: delivered" in sent[0].text and "webhook: failed" in sent[-1].text
        assert "503" in sent[-1].text
        assert "delivered" in chrome.find_element(By.ID, "delivery").text
        assert chrome.find_element(By.ID, "preview-count").text.startswith("31 ")
        screenshot(chrome, tmp_path, "group-ja")
        follow(chrome, chrome.find_element(By.ID, "events-older"))
        seqs = [td.text for td in chrome.find_elements(By.CLASS_NAME, "seq")]
        assert seqs == [str(n) for n in range(6, 0, -1)]  # 31 events, 25 a page
        assert not chrome.find_elements(By.ID, "older-not-kept")
        chrome.get(group_page)

        follow(chrome, chrome.find_element(By.ID, "silence-preview"))
        assert chrome.find_element(By.ID, "preview-count").text.startswith("31 ")
        follow(chrome, chrome.find_element(By.ID, "silence-create"))
        assert "/console/silences" in chrome.current_url

        post_failures(base, 131049, 1)

        def silenced() -> bool:
            chrome.get(f"{base}/console/silences")
            return chrome.find_element(By.CLASS_NAME, "silenced-count").text == "1"

        wait_for(silenced, "the next 131049 counted as silenced")
        screenshot(chrome, tmp_path, "silences-ja")

        chrome.get(f"{base}/console/dead")
        replayed = chrome.find_element(By.CSS_SELECTOR, "#dead td a").text
        screenshot(chrome, tmp_path, "dead-letters-ja")
        follow(chrome, chrome.find_element(By.CLASS_NAME, "replay"))
        assert chrome.find_element(By.ID, "confirm-count").text.startswith("1 ")
        follow(chrome, chrome.find_element(By.ID, "confirm"))
        assert "(1)" in chrome.find_element(By.ID, "done").text
        assert '"requeued": "notification"' in chrome.page_source
        # the replay is a new notification (it may die again at the closed port: a new id)
        assert redis.zscore("wastatus:dead:index", replayed) is None

        def campaign_counted() -> bool:
            chrome.get(f"{base}/console/funnels")
            return any("spring-sale" in row.text for row in chrome.find_elements(
                By.CLASS_NAME, "funnel-row"))  # fmt: skip

        wait_for(campaign_counted, "the web process flushed its funnel counts")
        assert "ファネル" in chrome.find_element(By.TAG_NAME, "h1").text
        sale = next(row for row in chrome.find_elements(By.CLASS_NAME, "funnel-row")
                    if "spring-sale" in row.text)  # fmt: skip
        assert "25%" in sale.find_element(By.CLASS_NAME, "rate").text
        assert "131047" in sale.find_element(By.CLASS_NAME, "codes").text
        csv_link = sale.find_element(By.CLASS_NAME, "failed-csv").get_attribute("href")
        screenshot(chrome, tmp_path, "funnels-ja")
        cookies = {c["name"]: c["value"] for c in chrome.get_cookies()}
        wait_for(lambda: "wamid.sale9" in requests.get(csv_link, cookies=cookies, timeout=10).text,
                 "the drain job listed the campaign's failed recipient")  # fmt: skip
        exported = requests.get(csv_link, cookies=cookies, timeout=10).text
        assert "818000099999" not in exported and "9999" in exported  # masked

        chrome.get(f"{base}/console/catalog?q=131049")
        follow(chrome, chrome.find_element(By.ID, "lang-switch"))
        assert "Catalog" in chrome.find_element(By.TAG_NAME, "h1").text
        assert "wait at least 24 hours" in chrome.page_source
        screenshot(chrome, tmp_path, "catalog-en")
        chrome.get(f"{base}/console/messages")
        chrome.find_element(By.ID, "wamid").send_keys("wamid.sale0")
        follow(chrome, chrome.find_element(By.ID, "message-lookup"))
        assert chrome.current_url.endswith("/console/messages/wamid.sale0")
        assert chrome.find_element(By.ID, "message-state").text == "read"
        rows = chrome.find_elements(By.CLASS_NAME, "timeline-status")
        assert [row.text.split()[0] for row in rows] == ["sent", "delivered", "read"]
        assert "marketing/" in chrome.find_element(By.ID, "message-pricing").text
        screenshot(chrome, tmp_path, "message-en")
        chrome.get(f"{base}/console/")
        assert "Overview" in chrome.find_element(By.TAG_NAME, "h1").text
        screenshot(chrome, tmp_path, "overview-en")
        chrome.set_window_size(390, 844)
        screenshot(chrome, tmp_path, "overview-phone")
