"""The dashboard in a real browser: Debian's Chromium driven over WebDriver (selenium)
against a real `flow serve` on 127.0.0.1 with a real store.

Checks, one `ok ...` line each: signing in (and a wrong key refused); a run started
through the API followed on its page to `completed` without a reload; a waiting run
cancelled with its button, and two more with the table's selection; the runs table
filtered; 10,000 runs paged through, every one seen once; a failed run's error two clicks
from the overview; every page loaded with a read-only key showing no action; a canary
secret stored in a connection found in no page and no response the browser loaded; the
keyboard reaching the navigation; the elements every page promises (navigation,
sign-out, charts, graph, steps, the workflow's statistics, schedules paused, resumed and
triggered, the table filtered by trigger, a run started again); signing out ending the
session; every page at desktop width, some at phone width and in
dark mode, saved as screenshots under target/screenshots/.

Environment: FLOW (the binary), SCREENSHOTS (directory), CHROMIUM and CHROMEDRIVER (paths).
"""

import concurrent.futures
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

FLOW = os.environ["FLOW"]
SHOTS = os.environ.get("SCREENSHOTS", "target/screenshots")
CANARY = "xoxb-CANARY-" + secrets.token_hex(8)
QUICK_RUNS = int(os.environ.get("FLOW_BROWSER_RUNS", "10000"))

PROGRAM = r"""
import slack

/// Adds one; the runs table's 10,000 runs are of this workflow.
workflow quick(n: int) -> int {
  return n + 1
}

/// Waits three seconds, then prints: a run to follow live.
workflow slow(n: int) -> int {
  wait 3s
  step said = console.print(message: "slow run ${n} woke up")
  return n * 2
}

/// Waits an hour: a run to cancel.
workflow parked(n: int) -> int {
  wait 1h
  return n
}

/// Calls a port where nothing listens: a failed run.
workflow broken(n: int) -> int {
  step fetched = http.get(url: "http://127.0.0.1:9/nothing-listens-here")
  return n
}

/// Fires at 03:00 on 1 January only (never during the test): a schedule to pause,
/// resume and trigger from its page.
workflow nightly -> int {
  on schedule("0 3 1 1 *", tz: "UTC")
  return 1
}

/// Posts to Slack with the stored connection (whose token is the canary).
workflow announce(text: string) -> string {
  step sent = slack.post_message(channel: "#general", text: text)
  return sent.ts
}
"""


def ok(what):
    print(f"ok {what}", flush=True)


def fail(what):
    print(f"FAIL {what}", flush=True)
    raise SystemExit(1)


def flow(*args, stdin="", cwd):
    p = subprocess.run(
        [FLOW, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if p.returncode != 0:
        fail(f"flow {' '.join(args)}: {p.stderr}")
    return p.stdout


class Server:
    def __init__(self, work):
        self.log = open(os.path.join(work, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [FLOW, "serve", "app.flow", "--store", "flow.db", "--listen", "127.0.0.1:0",
             "--rate-limit", "100000", "--as", "ops"],
            cwd=work,
            stderr=subprocess.PIPE,
            stdout=self.log,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "FLOW_LOG": "warn"},
        )
        self.base = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.write(line)
            if line.startswith("listening on "):
                self.base = line.split("listening on ", 1)[1].strip()
                break
        if not self.base:
            fail("flow serve did not start")
        # Keep draining its stderr so it never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        host, port = self.base.replace("http://", "").split(":")
        self.host, self.port = host, int(port)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.write(line)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Api:
    """The run API with a bearer key, on one keep-alive connection per thread."""

    def __init__(self, server, key):
        self.server, self.key = server, key
        self.local = threading.local()

    def call(self, method, path, body=None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
            self.local.conn = conn
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
        except (ConnectionError, http.client.HTTPException):
            self.local.conn = None
            return self.call(method, path, body)
        return r.status, (json.loads(text) if text else None)

    def start(self, workflow, body):
        status, answer = self.call("POST", f"/api/v1/workflows/{workflow}/runs", body)
        if status != 202:
            fail(f"starting {workflow}: {status} {answer}")
        return answer["run"]

    def status(self, run):
        return self.call("GET", f"/api/v1/runs/{run}")[1]["status"]

    def wait_status(self, run, wanted, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.status(run) == wanted:
                return
            time.sleep(0.05)
        fail(f"run {run} did not reach {wanted} (it is {self.status(run)})")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,800", "--lang=en-GB"]:
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    # The whole page, not only the window: size the window to the document first.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(max(width, 390), min(max(height, 800), 4000))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def desktop(driver):
    driver.set_window_size(1280, 800)


def sign_in(driver, base, key):
    driver.delete_all_cookies()
    driver.get(f"{base}/ui/login")
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "sign-in").click()


NAV = ["/ui/", "/ui/runs", "/ui/workflows", "/ui/schedules", "/ui/webhooks", "/ui/connections"]


def need(driver, *selectors):
    """Every selector matches at least one element of the current page."""
    missing = [s for s in selectors
               if not driver.execute_script("return document.querySelectorAll(arguments[0]).length", s)]
    if missing:
        fail(f"{driver.current_url} has no {', '.join(missing)}")


def rows(driver):
    """The runs table's rows: [run id, workflow, status]."""
    return driver.execute_script(
        "return [...document.querySelectorAll('tr.run')].map(r => [r.dataset.runId,"
        " r.querySelector('a[href^=\"/ui/workflows/\"]').textContent.trim(),"
        " r.querySelector('td.status').textContent.trim()])")


def status_text(driver):
    # Read in one script: the page may swap its main part between two WebDriver calls.
    return driver.execute_script(
        "const e = document.getElementById('run-status'); return e ? e.textContent.trim() : ''")


def wait_for(driver, what, condition, seconds=20):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)
    except TimeoutException:
        fail(f"{what} (page: {driver.current_url})")


def main():
    work = tempfile.mkdtemp(prefix="flow-browser-")
    with open(os.path.join(work, "app.flow"), "w") as f:
        f.write(PROGRAM)
    flow("check", "app.flow", cwd=work)
    admin = flow("keys", "create", "--name", "ops", "--scope", "admin", "--store", "flow.db", cwd=work).strip()
    reader = flow("keys", "create", "--name", "viewer", "--scope", "runs:read", "--store", "flow.db", cwd=work).strip()
    flow("connect", "slack", "--owner", "ops", "--secret", "bot_token", "--secret", "signing_secret",
         "--base-url", "http://127.0.0.1:9", "--store", "flow.db",
         stdin=f"{CANARY}\n{CANARY}-signing\n", cwd=work)
    server = Server(work)
    passed = False
    try:
        api = Api(server, admin)
        driver = browser()
        try:
            run_checks(server, api, driver, admin, reader)
            passed = True
        finally:
            driver.quit()
    finally:
        server.stop()
        server.log.close()
        if passed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"the store and the server's log are kept in {work}", flush=True)
    print(f"screenshots in {SHOTS}")


def run_checks(server, api, driver, admin, reader):
    base = server.base

    # Runs to look at: one completed, one failed, one to announce (fails: no Slack), the
    # 10,000 of `quick`.
    broken = api.start("broken", {"n": 1})
    announce = api.start("announce", {"text": "hello"})
    api.wait_status(broken, "failed")
    api.wait_status(announce, "failed")
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        quick = list(pool.map(lambda i: api.start("quick", {"n": i}), range(QUICK_RUNS)))
    api.wait_status(quick[-1], "completed", 120)
    ok(f"{QUICK_RUNS} runs started through the API in {time.time() - started:.1f}s")

    # Signing in: a wrong key is refused, the right one lands on the overview.
    sign_in(driver, base, "flow_sk_not-a-key")
    wait_for(driver, "a wrong key's error", EC.presence_of_element_located((By.CSS_SELECTOR, "#login .error")))
    shot(driver, "login-refused")
    desktop(driver)
    sign_in(driver, base, admin)
    wait_for(driver, "the overview after signing in", EC.presence_of_element_located((By.ID, "charts")))
    cookie = driver.get_cookie("flow_session")
    if not cookie or not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
        fail(f"the session cookie is not HttpOnly and SameSite=Strict: {cookie}")
    ok("signing in: a wrong key refused, the session cookie HttpOnly and SameSite=Strict")

    # The keyboard: Tab from the top reaches the navigation's links in order.
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    body.send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    if focused.tag_name != "a" or not focused.get_attribute("href").endswith("/ui/"):
        fail(f"the second Tab should reach the first section link, reached {focused.tag_name} {focused.get_attribute('href')}")
    ok("the keyboard reaches the navigation")

    # A failed run's error, two clicks from the overview.
    driver.get(f"{base}/ui/")
    shot(driver, "overview")
    desktop(driver)
    link = driver.find_element(By.CSS_SELECTOR, "#recent-failures a.run-link")
    link.click()
    error = wait_for(driver, "the failed run's error", EC.presence_of_element_located((By.ID, "error")))
    if "error" not in error.text.lower() or not error.find_elements(By.TAG_NAME, "p"):
        fail(f"the error section says nothing: {error.text!r}")
    shot(driver, "run-failed")
    desktop(driver)
    ok("a failed run's error two clicks from the overview")

    # A run followed live: its page moves to `completed` without a reload.
    slow = api.start("slow", {"n": 21})
    driver.get(f"{base}/ui/runs/{slow}")
    if status_text(driver) in ("completed", "failed"):
        fail("the slow run ended before its page opened")
    driver.execute_script("window.__noReload = 1")
    shot(driver, "run-live-waiting")
    desktop(driver)
    wait_for(driver, "the live page to show completed",
             lambda d: status_text(d) == "completed", 30)
    if driver.execute_script("return window.__noReload") != 1:
        fail("the page reloaded instead of updating in place")
    node = driver.find_element(By.CSS_SELECTOR, '#graph g.node[data-step="said"]')
    if "succeeded" not in node.get_attribute("class"):
        fail(f"the graph's node is not coloured succeeded: {node.get_attribute('class')}")
    shot(driver, "run-completed")
    desktop(driver)
    ok("a run's page follows it to completed without a reload, its graph coloured")

    # Cancel a waiting run with its button.
    parked = api.start("parked", {"n": 1})
    api.wait_status(parked, "waiting")
    driver.get(f"{base}/ui/runs/{parked}")
    if "waiting" not in driver.execute_script("return document.getElementById('waiting').textContent").lower():
        fail("the waiting run does not say what it waits for")
    shot(driver, "run-waiting")
    desktop(driver)
    driver.find_element(By.ID, "cancel").click()
    wait_for(driver, "the run to show cancelled", lambda d: status_text(d) == "cancelled")
    if api.status(parked) != "cancelled":
        fail("the API does not see the cancel")
    ok("a waiting run cancelled with its button")

    # Cancel two from the table's selection (the confirmation accepted).
    more = [api.start("parked", {"n": i}) for i in (2, 3)]
    for run in more:
        api.wait_status(run, "waiting")
    driver.get(f"{base}/ui/runs?workflow=parked&status=waiting")
    for run in more:
        driver.find_element(By.CSS_SELECTOR, f'input.select-run[value="{run}"]').click()
    driver.find_element(By.ID, "cancel-selected").click()
    WebDriverWait(driver, 10).until(EC.alert_is_present()).accept()
    for run in more:
        api.wait_status(run, "cancelled", 10)
    ok("two runs cancelled from the table's selection")

    # Filter the runs table with its form.
    driver.get(f"{base}/ui/runs")
    Select(driver.find_element(By.CSS_SELECTOR, "#filters select[name=workflow]")).select_by_value("broken")
    Select(driver.find_element(By.CSS_SELECTOR, "#filters select[name=status]")).select_by_value("failed")
    driver.find_element(By.ID, "apply").click()
    wait_for(driver, "the filtered table", EC.url_contains("status=failed"))
    rows = driver.execute_script(
        "return [...document.querySelectorAll('tr.run')].map(r => [r.dataset.runId, r.querySelector('td.status').textContent.trim(), r.cells[r.cells.length - 5].textContent.trim()])")
    if [r[0] for r in rows] != [broken] or any(r[1] != "failed" for r in rows):
        fail(f"filtering by workflow broken and status failed shows {rows}")
    shot(driver, "runs-filtered")
    desktop(driver)
    driver.get(f"{base}/ui/runs?status=completed")
    statuses = driver.execute_script(
        "return [...document.querySelectorAll('tr.run td.status')].map(c => c.textContent.trim())")
    if not statuses or any(s != "completed" for s in statuses):
        fail(f"filtering by status completed shows {set(statuses)}")
    ok("the runs table filters by workflow and status")

    # Page through the 10,000 runs of `quick`.
    driver.get(f"{base}/ui/runs?workflow=quick&limit=500")
    seen, pages = [], 0
    started = time.time()
    while True:
        pages += 1
        seen += driver.execute_script("return [...document.querySelectorAll('tr.run')].map(r => r.dataset.runId)")
        nxt = driver.find_elements(By.ID, "next")
        if not nxt:
            break
        nxt[0].click()
        if pages > QUICK_RUNS:
            fail("the pages do not end")
    if len(seen) != len(set(seen)) or set(seen) != set(quick):
        fail(f"paging saw {len(seen)} rows, {len(set(seen))} distinct, {len(set(quick) - set(seen))} missing")
    shot(driver, "runs-last-page")
    desktop(driver)
    ok(f"paged through {len(seen)} runs in {pages} pages ({time.time() - started:.1f}s), each once")

    contract(driver, base, api, slow, broken)

    # Every page with the admin key, saved; then at phone width and in dark mode.
    pages_to_see = {
        "overview-day": "/ui/?window=day",
        "runs": "/ui/runs",
        "workflows": "/ui/workflows",
        "workflow": "/ui/workflows/slow",
        "schedules": "/ui/schedules",
        "webhooks": "/ui/webhooks",
        "connections": "/ui/connections",
    }
    for name, path in pages_to_see.items():
        driver.get(base + path)
        shot(driver, name)
        desktop(driver)
    driver.set_window_size(390, 844)
    for name, path in {"phone-overview": "/ui/", "phone-run": f"/ui/runs/{broken}",
                       "phone-runs": "/ui/runs"}.items():
        driver.get(base + path)
        wide = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
        if wide and name != "phone-runs":
            fail(f"{path} scrolls sideways at phone width")
        driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    desktop(driver)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    driver.get(f"{base}/ui/runs/{slow}")
    background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    driver.save_screenshot(os.path.join(SHOTS, "dark-run.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    if background in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"):
        fail(f"dark mode keeps a light background: {background}")
    ok("every page saved at 1280x800, three at phone width without sideways scrolling, one in dark mode")

    # The canary secret: in no page the admin sees, and in no response the browser loaded.
    session = driver.get_cookie("flow_session")["value"]
    every = ["/ui/", "/ui/?window=week", f"/ui/runs/{announce}", f"/ui/runs/{broken}",
             *pages_to_see.values()]
    urls = set()
    for path in every:
        driver.get(base + path)
        if CANARY in driver.page_source:
            fail(f"{path} shows the canary secret")
        urls.add(base + path)
        urls.update(driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"))
    for url in sorted(urls):
        if not url.startswith(base):
            fail(f"a page loaded {url} from elsewhere")
        request = urllib.request.Request(url, headers={"Cookie": f"flow_session={session}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                body = r.read().decode(errors="replace")
        except TimeoutError:
            continue  # an event stream of a run still going; its events carry no secret
        if CANARY in body:
            fail(f"{url} answered the canary secret")
    ok(f"the canary secret appears in no page and none of the {len(urls)} responses loaded")

    # Signing out: back on the sign-in page, and the old session refused by the server.
    driver.get(f"{base}/ui/runs")
    driver.find_element(By.ID, "sign-out").click()
    wait_for(driver, "the sign-in page after signing out", EC.presence_of_element_located((By.ID, "login")))
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/ui/runs", headers={"Cookie": f"flow_session={session}"}), timeout=10) as r:
        if "/ui/login" not in r.url or 'id="runs"' in r.read().decode(errors="replace"):
            fail(f"the session still works after signing out (answered {r.url})")
    ok("signing out ends the session: the old cookie is refused")

    # A read-only key: every page, no action anywhere.
    sign_in(driver, base, reader)
    wait_for(driver, "the reader's overview", EC.presence_of_element_located((By.ID, "charts")))
    waiting = api.start("parked", {"n": 9})
    api.wait_status(waiting, "waiting")
    for path in ["/ui/", "/ui/runs", f"/ui/runs/{waiting}", f"/ui/runs/{broken}",
                 "/ui/workflows", "/ui/workflows/parked", "/ui/schedules", "/ui/webhooks",
                 "/ui/connections"]:
        driver.get(base + path)
        if path == "/ui/schedules":
            need(driver, 'table#schedules tr[data-workflow="nightly"]')  # a row it could act on
        if path == f"/ui/runs/{waiting}":
            need(driver, "#run-status")  # the run's page, not an error page
        actions = driver.find_elements(By.CSS_SELECTOR, ".action")
        if actions:
            fail(f"{path} offers a reader {len(actions)} action(s)")
        if CANARY in driver.page_source:
            fail(f"{path} shows the reader the canary secret")
    shot(driver, "reader-run-waiting")
    desktop(driver)
    ok("a read-only key sees no action on any page")



def contract(driver, base, api, slow, broken):
    """The elements the dashboard promises on each page, and the actions not checked above."""
    # Every signed-in page: the navigation's six sections and the sign-out button.
    for path in NAV:
        driver.get(base + path)
        need(driver, "nav#nav", "button#sign-out", *(f'nav#nav a[href="{h}"]' for h in NAV))

    # The overview: charts drawn, health and schedules cards, failing workflows linking to
    # their failed runs.
    driver.get(f"{base}/ui/")
    need(driver, "#charts svg", "#failing", "#recent-failures a.run-link", "#health", "#schedules")
    driver.find_element(By.CSS_SELECTOR, '#failing a[href*="workflow=broken"]').click()
    wait_for(driver, "the failing workflow's runs", EC.url_contains("/ui/runs"))
    shown = rows(driver)
    if not shown or any(w != "broken" or st != "failed" for _, w, st in shown):
        fail(f"the failing workflow's link shows {shown}")
    ok("every page has the navigation and sign-out; the overview its charts, health, schedules and failing workflows")

    # A finished run's page: timeline, graph, steps, no cancel, a rerun.
    driver.get(f"{base}/ui/runs/{slow}")
    need(driver, "#timeline", "#graph", "#graph g.node[data-step]", "details.step", "button#rerun.action")
    if driver.find_elements(By.ID, "cancel"):
        fail("a completed run offers to cancel it")
    driver.get(f"{base}/ui/runs/{broken}")
    error = driver.find_element(By.ID, "error").text
    wanted = api.call("GET", f"/api/v1/runs/{broken}")[1].get("error") or {}
    for part in ("kind", "message"):
        if str(wanted.get(part, "")) not in error:
            fail(f"the error section lacks the error's {part} {wanted.get(part)!r}: {error!r}")
    driver.find_element(By.ID, "rerun").click()
    wait_for(driver, "the new run's page",
             lambda d: re.search(r"/ui/runs/[^/?]+$", d.current_url) and broken not in d.current_url)
    again = driver.current_url.rsplit("/", 1)[1]
    api.wait_status(again, "failed")
    wait_for(driver, "the new run's page to show failed", lambda d: status_text(d) == "failed")
    ok("a run's page has its timeline, graph and steps, the error's kind and message; run again starts a new run")

    # The runs table: finding a run by id, and filtering by trigger.
    driver.get(f"{base}/ui/runs")
    need(driver, "table#runs", "form#filters select[name=workflow]", "form#filters select[name=status]",
         "form#filters select[name=trigger]", "button#apply", "input[name=id]")
    field = driver.find_element(By.CSS_SELECTOR, "input[name=id]")
    field.send_keys(broken)
    field.submit()
    wait_for(driver, "the run found by its id", EC.url_contains(f"/ui/runs/{broken}"))
    ok("a run found by its id from the runs page")

    # Workflows: the table links to each, and a workflow's page has its parts.
    driver.get(f"{base}/ui/workflows")
    for name in ("quick", "slow", "parked", "broken", "nightly", "announce"):
        need(driver, f'table#workflows a[href="/ui/workflows/{name}"]')
    driver.find_element(By.CSS_SELECTOR, 'table#workflows a[href="/ui/workflows/slow"]').click()
    wait_for(driver, "the workflow's page", EC.presence_of_element_located((By.ID, "signature")))
    need(driver, "#signature", "#graph", "#recent-runs", "#step-stats", "#optimize")
    if "slow" not in driver.find_element(By.ID, "signature").text:
        fail("the workflow's signature does not name it")
    ok("the workflows table links to each workflow, whose page has its signature, graph, runs, step statistics and advice")

    # Schedules: pause, resume, trigger now; then the runs table filtered by trigger.
    row = 'table#schedules tr[data-workflow="nightly"]'
    driver.get(f"{base}/ui/schedules")
    need(driver, f"{row} .pause.action", f"{row} .trigger.action")
    driver.find_element(By.CSS_SELECTOR, f"{row} .pause").click()
    wait_for(driver, "the schedule to show paused", lambda d: d.find_elements(By.CSS_SELECTOR, f"{row} .resume.action"))
    shot(driver, "schedules-paused")
    desktop(driver)
    driver.find_element(By.CSS_SELECTOR, f"{row} .resume").click()
    wait_for(driver, "the schedule to show running again", lambda d: d.find_elements(By.CSS_SELECTOR, f"{row} .pause.action"))
    trigger = driver.find_element(By.CSS_SELECTOR, f"{row} .trigger")
    trigger.click()
    # The form's answer replaces the page; going elsewhere before it does races with it.
    wait_for(driver, "the trigger's answer", EC.staleness_of(trigger))
    deadline = time.time() + 20
    while True:
        driver.get(f"{base}/ui/runs")
        Select(driver.find_element(By.CSS_SELECTOR, "#filters select[name=trigger]")).select_by_value("schedule")
        driver.find_element(By.ID, "apply").click()
        wait_for(driver, "the table filtered by trigger", EC.url_contains("trigger=schedule"))
        shown = rows(driver)
        if shown and all(st == "completed" for _, _, st in shown):
            break
        if time.time() > deadline:
            fail(f"the triggered schedule's run did not complete: {shown}")
        time.sleep(0.2)
    if len(shown) != 1 or shown[0][1] != "nightly":
        fail(f"filtering by trigger schedule shows {shown}")
    driver.get(f"{base}/ui/runs?workflow=nightly&trigger=api")
    if rows(driver):
        fail(f"filtering nightly by trigger api shows {rows(driver)}")
    ok("a schedule paused, resumed and triggered from its page; the runs table filtered by trigger")

    # Webhooks and connections.
    driver.get(f"{base}/ui/webhooks")
    need(driver, "#deliveries")
    driver.get(f"{base}/ui/connections")
    need(driver, "#connections", "#audit")
    if "slack" not in driver.find_element(By.ID, "connections").text:
        fail("the connections page does not list the slack connection")
    ok("the webhooks page has its deliveries, the connections page its connections and audit log")


if __name__ == "__main__":
    main()
