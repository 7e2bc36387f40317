"""The Command Center console in a real browser (Debian's chromium through Selenium), over a real gateway in its own
process with mutual TLS: an operator signs in, sees the camera come online when `fr-gateway camera` streams, sees
its decisions and an alert for a watchlisted person, and confirms it (found in `audit export` under the
operator's name); a supervisor's analytics count exactly the decisions sent; an operator cannot open analytics; a
change without its CSRF token is refused; wrong passwords are refused and then rate-limited.

With FRG_CONSOLE_RECORD=1 (`make bench-console`) the run also writes the README's screenshots and the measured
time from a crop reaching the gateway to its alert on the screen, beside a gRPC WatchAlerts subscriber's."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import queue
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from conftest import (
    ENROLLED,
    NOT_ENROLLED,
    Site,
    add_entry,
    create_list,
    create_site,
    fr_gateway,
    launch,
    loose,
    nik_for,
    photos,
    stop,
)

from fr_gateway.contract import (
    command_center_pb2,
    command_center_pb2_grpc,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
)
from fr_gateway.security.certs import Principal
from fr_gateway.transport import free_port

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
RECORD = os.environ.get("FRG_CONSOLE_RECORD") == "1"
INTEGRATOR = Principal("integrator", "DUKCAPIL-1")
CAMERA = Principal("camera", "IKN-GATE-07")
CONSOLE = Principal("operator", "console-1")
WATCHER = Principal("operator", "latency-probe")
GALLERY_PEOPLE = ENROLLED[:6]
WANTED = NOT_ENROLLED[3]  # orl/s31: on the watchlist from photos 5-7, never in the gallery
PASSWORD = "correct horse battery staple"
WAIT_S = 60


class ConsoleSite:
    """A gateway with a small gallery and a watchlist, a console following it, and its accounts."""

    def __init__(self, site: Site, console_url: str, ca: Path, users: Path) -> None:
        self.site = site
        self.users = users
        self.url = console_url
        self.tls = ssl.create_default_context(cafile=str(ca))
        self.decisions: list[dict] = []  # what the camera was answered, once it has streamed
        self.screen_latencies_ms: list[float] = []
        self.grpc_latencies_ms: list[float] = []

    def http(self, method: str, path: str, body: dict | None = None, headers: dict | None = None,
             cookies: dict | None = None) -> tuple[int, dict, http.client.HTTPResponse]:
        host, port = self.url.removeprefix("https://").rstrip("/").split(":")
        connection = http.client.HTTPSConnection(host, int(port), context=self.tls, timeout=30)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        connection.request(method, path, json.dumps(body) if body is not None else None, sent)
        response = connection.getresponse()
        text = response.read().decode()
        connection.close()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"text": text}
        return response.status, answer, response

    def at(self, url: str) -> ConsoleSite:
        """The same site seen through another console."""
        return ConsoleSite(self.site, url, self.site.certs / "ca.pem", self.users)

    def sign_in_over_http(self, name: str, password: str) -> tuple[int, dict, dict]:
        """The sign-in a browser makes, without one: the status, the answer and the cookies set."""
        _, token, response = self.http("GET", "/api/login")
        cookies = cookies_of(response)
        status, answer, response = self.http("POST", "/api/login", {"name": name, "password": password},
                                             {"X-CSRF-Token": token["token"]}, cookies)
        return status, answer, {**cookies, **cookies_of(response)}


def cookies_of(response: http.client.HTTPResponse) -> dict:
    return {header.split("=", 1)[0]: header.split("=", 1)[1].split(";", 1)[0]
            for header in response.headers.get_all("Set-Cookie") or []}


def wait_for_port(port_file: Path, process: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + WAIT_S
    while not (port_file.exists() and port_file.read_text().strip()):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return int(port_file.read_text())


@contextlib.contextmanager
def console_process(site: Site, users: Path, gateway: str = "", name: str = "console") -> Iterator[str]:
    folder = site.folder / name
    folder.mkdir()
    port_file, log = folder / "port", folder / "console.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fr_gateway.cli", "console", "--gateway", gateway or site.target, "--listen",
             "127.0.0.1:0",
             "--port-file", str(port_file), "--users", str(users), "--https-cert", str(site.certs / "console.pem"),
             "--https-key", str(site.certs / "console.key"), "--cert", str(site.certs / "operator-console-1.pem"),
             "--key", str(site.certs / "operator-console-1.key"), "--ca", str(site.certs / "ca.pem")],
            stdout=output, stderr=subprocess.STDOUT)
    try:
        yield f"https://127.0.0.1:{wait_for_port(port_file, process, log)}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    site = create_site(tmp_path_factory.mktemp("console"), INTEGRATOR, CAMERA, CONSOLE, WATCHER)
    assert fr_gateway("certs", "server", "console", "--dir", str(site.certs)).returncode == 0
    users = site.folder / "console-users.sqlite3"
    for name, role in (("alice", "operator"), ("sam", "supervisor"), ("target", "operator")):
        added = subprocess.run([sys.executable, "-m", "fr_gateway.cli", "console", "users", "add", name, "--role",
                                role, "--password-stdin", "--users", str(users)], input=PASSWORD + "\n",
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
    gateway = launch(site.folder, "--certs", str(site.certs), "--gallery", str(site.folder / "g"))
    try:
        site.target = gateway.target
        with site.channel(INTEGRATOR) as channel:
            summary = gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
                gallery_pb2.EnrollRequest(nik=nik_for(i), face=loose(photos(*who)[0]))
                for i, who in enumerate(GALLERY_PEOPLE)), timeout=120)
            assert summary.enrolled == len(GALLERY_PEOPLE)
            create_list(channel, "missing-persons", threshold=0.4, priority=watchlists_pb2.PRIORITY_HIGH)
            add_entry(channel, "missing-persons", WANTED, photo_numbers=(5, 6, 7))
        with console_process(site, users) as url:
            yield ConsoleSite(site, url, site.certs / "ca.pem", users)
    finally:
        site.log = stop(gateway)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed: `make test` installs them (as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1440,1000"):
        options.add_argument(flag)
    options.accept_insecure_certs = True  # the console's certificate comes from the site's private CA
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object]) -> object:
    """Wait for a condition of the page; an element that the page replaced while it was read (the sign-in page
    leaving, a live row re-drawn) is read again on the next try rather than failing the test."""
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def sign_in(browser: webdriver.Chrome, console: ConsoleSite, name: str, password: str = PASSWORD) -> str:
    """Sign in through the form; the error shown, or "" once the live page has loaded."""
    browser.delete_all_cookies()
    browser.get(f"{console.url}/login")
    wait_until(browser, lambda b: b.execute_script("return document.readyState") == "complete")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()
    wait_until(browser, lambda b: (
        (b.find_elements(By.ID, "login-error") and b.find_element(By.ID, "login-error").text)
        or (b.current_url.rstrip("/") == console.url and b.find_element(By.ID, "user").text)))
    return browser.find_element(By.ID, "login-error").text if "login" in browser.current_url else ""


def watch_over_grpc(site: Site, arrivals: dict[str, float], alerts: queue.Queue, stop_event: threading.Event) -> None:
    """A second operator following the gateway over gRPC, for the baseline: when each crop reached the gateway
    (its decision's time less its latency) and when each alert reached this subscriber."""
    with site.channel(WATCHER) as channel:
        stub = recognition_pb2_grpc.RecognitionStub(channel)
        decisions = stub.WatchDecisions(recognition_pb2.WatchDecisionsRequest(all_decisions=True))
        watching = stub.WatchAlerts(watchlists_pb2.WatchAlertsRequest())

        def follow_decisions() -> None:
            with contextlib.suppress(grpc.RpcError):
                for event in decisions:
                    arrivals[event.request_id] = (datetime.datetime.fromisoformat(event.time).timestamp()
                                                  - event.latency_ms / 1000)

        follower = threading.Thread(target=follow_decisions, daemon=True)
        follower.start()
        threading.Thread(target=lambda: (stop_event.wait(), decisions.cancel(), watching.cancel()),
                         daemon=True).start()
        with contextlib.suppress(grpc.RpcError):
            for alert in watching:
                alerts.put((alert.request_id, time.time()))
        follower.join(10)


def camera_folder(folder: Path) -> Path:
    """A slideshow for `fr-gateway camera`: enrolled people's later photos, a stranger's, and the wanted person's
    photos that are not on the list."""
    folder.mkdir()
    shown = [photos(*who)[2] for who in GALLERY_PEOPLE] + [photos(*NOT_ENROLLED[4])[1]] + \
        [photos(*WANTED)[n] for n in (0, 1, 8)]
    for number, photo in enumerate(shown):
        face = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        face = cv2.resize(face, None, fx=240 / face.shape[0], fy=240 / face.shape[0], interpolation=cv2.INTER_CUBIC)
        frame = np.full((480, 640, 3), 40, dtype=np.uint8)
        top, left = (480 - face.shape[0]) // 2, (640 - face.shape[1]) // 2
        frame[top:top + face.shape[0], left:left + face.shape[1]] = face
        cv2.imwrite(str(folder / f"{number:03d}.png"), frame)
    return folder


def screenshot(browser: webdriver.Chrome, name: str) -> None:
    if RECORD:
        browser.save_screenshot(str(ROOT / "docs" / f"console-{name}.png"))


def test_an_operator_sees_the_camera_decisions_and_alerts_live_and_confirms_one(console, browser):
    assert sign_in(browser, console, "alice") == ""
    assert browser.find_element(By.ID, "user").text == "alice (operator)"
    assert browser.find_element(By.ID, "nav-analytics").is_displayed() is False
    arrivals: dict[str, float] = {}
    grpc_alerts: queue.Queue = queue.Queue()
    stop_watching = threading.Event()
    watcher = threading.Thread(target=watch_over_grpc, args=(console.site, arrivals, grpc_alerts, stop_watching),
                               daemon=True)
    watcher.start()
    time.sleep(1)  # both subscriptions open before the camera starts
    jsonl = console.site.folder / "decisions.jsonl"
    certs = console.site.certs
    camera = subprocess.Popen(
        [sys.executable, "-m", "fr_gateway.cli", "camera", "--source", str(camera_folder(console.site.folder / "cam")),
         "--camera-id", CAMERA.identity, "--no-tracking", "--jsonl", str(jsonl), "--target", console.site.target,
         "--cert", str(certs / f"camera-{CAMERA.identity}.pem"), "--key", str(certs / f"camera-{CAMERA.identity}.key"),
         "--ca", str(certs / "ca.pem")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tile = f'.camera[data-camera="{CAMERA.identity}"]'
        wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f"{tile}.online"))
        wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#decision-rows tr.MATCH"))
        wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".alert[data-shown-at]"))
        assert camera.wait(WAIT_S) == 0, camera.stderr.read()
    finally:
        if camera.poll() is None:
            camera.kill()
            camera.wait()
    console.decisions = [json.loads(line) for line in jsonl.read_text().splitlines()]
    alerted = [record for record in console.decisions if record["alerts"]]
    assert len(alerted) >= 2, console.decisions  # the wanted person's photos
    wait_until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".alert[data-shown-at]")) == len(alerted))
    rows = browser.find_elements(By.CSS_SELECTOR, "#decision-rows tr")
    assert len(rows) == len(console.decisions)
    matched = {row.find_element(By.CSS_SELECTOR, ".nik").text for row in rows if "MATCH" in row.get_attribute("class")
               .split()}
    assert matched == {record["nik"] for record in console.decisions if record["decision"] == "MATCH"} != set()
    # each alert shows the sealed crop, the list, the entry's label and the score against the threshold
    card = browser.find_elements(By.CSS_SELECTOR, ".alert")[-1]
    crop = card.find_element(By.CSS_SELECTOR, "img.crop")
    assert browser.execute_script("return arguments[0].naturalWidth", crop) == 112
    assert card.find_element(By.TAG_NAME, "h3").text == "/".join(WANTED)
    assert "missing-persons" in card.find_element(By.CSS_SELECTOR, ".list").text
    assert "threshold 0.400" in card.find_element(By.CSS_SELECTOR, ".score").text

    for alert_card in browser.find_elements(By.CSS_SELECTOR, ".alert"):
        request_id = alert_card.get_attribute("data-request-id")
        shown = float(alert_card.get_attribute("data-shown-at")) / 1000
        console.screen_latencies_ms.append((shown - arrivals[request_id]) * 1000)
    while not grpc_alerts.empty():
        request_id, received = grpc_alerts.get()
        console.grpc_latencies_ms.append((received - arrivals[request_id]) * 1000)
    stop_watching.set()
    assert len(console.screen_latencies_ms) == len(console.grpc_latencies_ms) == len(alerted)
    screenshot(browser, "live")

    card.find_element(By.CSS_SELECTOR, "textarea.note").send_keys("seen at gate 7, officer sent")
    card.find_element(By.CSS_SELECTOR, "button.confirm").click()
    wait_until(browser, lambda b: "CONFIRMED by operator/console-1 for alice" in
               card.find_element(By.CSS_SELECTOR, ".outcome").text)
    assert card.find_element(By.CSS_SELECTOR, "button.reject").is_enabled() is False

    confirmed = console.site.export("--operation", "Adjudicate", "--decision", "CONFIRMED")
    assert [(r["caller"], r["on_behalf_of"]) for r in confirmed if "seen at gate 7" in r.get("detail", "")] == [
        ("operator/console-1", "alice")]
    views = console.site.export("--operation", "RecordView")
    assert any(r.get("on_behalf_of") == "alice" and r["detail"] == "view live" and r["decision"] == "VIEWED"
               for r in views)

    browser.get(f"{console.url}/analytics")  # an operator's role stops here
    assert "supervisors only" in browser.find_element(By.TAG_NAME, "body").text
    status, _, _ = console.http("GET", "/analytics", cookies={
        "__Host-frc-session": browser.get_cookie("__Host-frc-session")["value"]})
    assert status == 403


def test_a_supervisor_sees_analytics_that_count_every_decision_sent(console, browser):
    if not console.decisions:
        pytest.skip("needs the camera run of the test before")
    assert sign_in(browser, console, "sam") == ""
    browser.find_element(By.ID, "nav-analytics").click()
    wait_until(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
    row = browser.find_element(By.CSS_SELECTOR, f'#camera-table tr[data-camera="{CAMERA.identity}"]')
    sent = len(console.decisions)
    assert int(row.find_element(By.CSS_SELECTOR, ".faces").text) == sent
    assert int(row.find_element(By.CSS_SELECTOR, ".people").text) == sent  # untracked: one face, one person
    matched = sum(record["decision"] == "MATCH" for record in console.decisions)
    assert row.find_element(By.CSS_SELECTOR, ".identified").text == f"{100 * matched / sent:.1f}%"
    alerts = browser.find_element(By.CSS_SELECTOR, '#watchlist-table tr[data-watchlist="missing-persons"] .alerts')
    assert int(alerts.text) == sum(bool(record["alerts"]) for record in console.decisions)
    adjudications = browser.find_element(
        By.CSS_SELECTOR, '#audit-table tr[data-operation="Adjudicate"][data-decision="CONFIRMED"] .records')
    assert adjudications.text == "1"
    assert browser.find_elements(By.CSS_SELECTOR, "#heat-map rect.heat")  # 7 x 24 cells
    screenshot(browser, "analytics")
    # the same counts over gRPC, as the console reads them
    with console.site.channel(CONSOLE) as channel:
        analytics = command_center_pb2_grpc.CommandCenterStub(channel).GetAnalytics(
            command_center_pb2.GetAnalyticsRequest(), timeout=30)
    assert sum(hour.faces for hour in analytics.hours if hour.camera_id == CAMERA.identity) == sent
    if RECORD:
        write_latencies(console)


def test_a_change_without_its_csrf_token_is_refused(console):
    status, answer, cookies = console.sign_in_over_http("alice", PASSWORD)
    assert status == 200, answer
    session = {"__Host-frc-session": cookies["__Host-frc-session"]}
    _, me, _ = console.http("GET", "/api/session", cookies=session)
    body = {"adjudication": "DISMISSED", "note": "forged"}
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        status, answer, _ = console.http("POST", "/api/alerts/A0/adjudication", body, headers, session)
        assert (status, answer["error"]) == (403, "missing or wrong CSRF token")
        assert console.http("POST", "/api/logout", {}, headers, session)[0] == 403
    # with the token the request passes the check (and finds no such alert)
    assert console.http("POST", "/api/alerts/A0/adjudication", body, {"X-CSRF-Token": me["csrf"]}, session)[0] == 404
    # signing in needs the sign-in token too
    assert console.http("POST", "/api/login", {"name": "alice", "password": PASSWORD})[0] == 403
    assert console.http("GET", "/api/analytics", cookies=session)[0] == 403  # an operator
    assert console.http("GET", "/api/events")[0] == 401
    status, _, response = console.http("GET", "/")
    assert (status, response.getheader("Location")) == (303, "/login")
    assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy")


def test_a_wrong_password_is_refused_and_then_rate_limited(console, browser):
    assert sign_in(browser, console, "target", "not the password") == "wrong name or password"
    for _ in range(4):
        assert console.sign_in_over_http("target", "still not it")[0] == 401
    status, answer, _ = console.sign_in_over_http("target", PASSWORD)  # the right one, too late
    assert status == 429 and "too many wrong passwords" in answer["error"]
    assert sign_in(browser, console, "target").startswith("too many wrong passwords")
    assert console.sign_in_over_http("alice", PASSWORD)[0] == 200  # other accounts are not locked out


def test_nothing_personal_is_shown_when_a_gateway_cannot_record_the_view(console):
    with console_process(console.site, console.users, gateway=f"127.0.0.1:{free_port()}", name="blind") as url:
        blind = console.at(url)
        status, answer, cookies = blind.sign_in_over_http("alice", PASSWORD)
        assert status == 200, answer
        session = {"__Host-frc-session": cookies["__Host-frc-session"]}
        status, answer, _ = blind.http("GET", "/api/events", cookies=session)
        assert status == 503 and "cannot be recorded in the audit log" in answer["error"]


def write_latencies(console: ConsoleSite) -> None:
    """benchmarks/console.json and .md: crop at the gateway to alert on the screen, beside a gRPC subscriber."""
    screen, grpc_ = sorted(console.screen_latencies_ms), sorted(console.grpc_latencies_ms)
    figures = {
        "alerts": len(screen),
        "screen_ms": {"p50": round(statistics.median(screen), 1), "max": round(screen[-1], 1)},
        "grpc_subscriber_ms": {"p50": round(statistics.median(grpc_), 1), "max": round(grpc_[-1], 1)},
        "screen_to_subscriber_p50": round(statistics.median(screen) / statistics.median(grpc_), 2),
        "measured": datetime.date.today().isoformat(),
        "command": "make bench-console",
    }
    (ROOT / "benchmarks" / "console.json").write_text(json.dumps(figures, indent=2) + "\n")
    (ROOT / "benchmarks" / "console.md").write_text(
        "# Alert to screen\n\nFrom a crop reaching the gateway (its decision's time less its latency) to the alert "
        "card painted in the console's live page (headless chromium, `requestAnimationFrame`), beside the same alert "
        "reaching a gRPC `WatchAlerts` subscriber, in the same run. Gateway, console, browser and camera share this "
        "machine's 2 cores.\n\n"
        "| alerts | screen p50 ms | screen max ms | gRPC subscriber p50 ms | gRPC subscriber max ms "
        "| screen / subscriber (p50) |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {figures['alerts']} | {figures['screen_ms']['p50']} | {figures['screen_ms']['max']} | "
        f"{figures['grpc_subscriber_ms']['p50']} | {figures['grpc_subscriber_ms']['max']} | "
        f"{figures['screen_to_subscriber_p50']} |\n\nReproduce: `make bench-console` ({figures['measured']}).\n")
