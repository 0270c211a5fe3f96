"""End to end in a real browser: ``streamlit run app.py`` on loopback, driven by headless Chromium.

The knowledge base is the shipped corpus plus one hostile text document whose text carries
``<script>`` and an ``onerror`` handler: it must show as literal text and run nothing. The test
asks the pooled-budgets question on the Ask page, checks that the citation ``kb.ask`` gives
(title and page) is rendered, times the answers, and saves a screenshot to ``$TEST_ARTIFACTS``
(default ``artifacts/``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from kb.ui import views
from kb.config import PROJECT_ROOT
from kb.knowledge import KnowledgeBase
from tests.conftest import make_settings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
POOLED = "How did others handle pooled budgets?"
PURPOSE = "What helped partners agree a shared purpose?"
HOSTILE_TITLE = "Quokka Valley board minutes <i>draft</i>"
HOSTILE = (
    f"{HOSTILE_TITLE}\n\n"
    "The Quokka Valley board wrote <script>alert(1)</script> into the minutes of its meeting about "
    "the quokka sanctuary. The Quokka Valley board also pasted <img src=x onerror=\"window.__pwned=1\"> "
    "into the minutes of the quokka sanctuary meeting, and the clerk of the Quokka Valley board "
    "read the minutes of the quokka sanctuary meeting aloud.\n"
)
HOSTILE_QUESTION = "What did the Quokka Valley board write into the minutes of the quokka sanctuary meeting?"


def _missing() -> str:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does, as root)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is missing: install Debian's chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return ""


if _missing():
    if os.environ.get("CI") == "true":  # in CI the browser test must run: scripts/test.sh installs the browser
        pytest.fail(_missing(), pytrace=False)
    pytest.skip(_missing(), allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifacts() -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS") or PROJECT_ROOT / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def hostile_kb(corpus_kb, tmp_path_factory) -> KnowledgeBase:
    """A copy of the session's ingested corpus, plus the hostile document."""
    root = tmp_path_factory.mktemp("browser")
    home = root / "home"
    shutil.copytree(corpus_kb.settings.home, home, ignore=shutil.ignore_patterns("ingest.lock", "uploads", "eval"))
    extra = root / "extra"
    extra.mkdir()
    (extra / "quokka-minutes.txt").write_text(HOSTILE, encoding="utf-8")
    kb = KnowledgeBase(make_settings(home))
    report = kb.ingest([extra], progress=False)
    assert report.ok, report.to_json()
    assert len(kb.docs.ids()) == len(corpus_kb.docs.ids()) + 1
    kb.prepare_app()  # what the first `kb app` does: the start measured below is a later one
    assert kb.settings.encoder_dir.exists()
    return kb


@pytest.fixture(scope="module")
def expected(hostile_kb) -> dict[str, str]:
    """The reference each question's first citation should show, from the library (before the server starts)."""
    out = {}
    for question in (POOLED, HOSTILE_QUESTION, PURPOSE):
        answer = hostile_kb.ask(question)
        assert answer.answered and answer.citations, question
        first = answer.citations[0]
        out[question] = views.citation_reference(first, hostile_kb.document(first.doc_id).meta.publisher)
    return out


@contextmanager
def running_app(home: Path, log_name: str, **env_extra: str):
    """``kb app`` (what the README's main command runs) on loopback, until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", **env_extra)
    if os.environ.get("KB_ONTOLOGY"):
        env["KB_ONTOLOGY"] = os.environ["KB_ONTOLOGY"]
    log = (artifacts() / log_name).open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("kb")), "app", "--address", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy in 90 s; see {log.name}")
            time.sleep(0.3)
        yield {"url": url, "started": started}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def server(hostile_kb, driver, expected):
    """The app over the hostile knowledge base; the browser is already open."""
    with running_app(hostile_kb.settings.home, "streamlit-server.log") as app:
        yield app


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-default-apps", "--window-size=1400,2200",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def body_text(d) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.TAG_NAME, "body").text


def wait_for(d, predicate, timeout: float, what: str):
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate(d)
            if value:
                return value
        except (StaleElementReferenceException, WebDriverException):
            pass
        time.sleep(0.1)
    d.save_screenshot(str(artifacts() / "browser-timeout.png"))
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page text:\n{body_text(d)[:2000]}")


def ask(d, question: str, expected: str, timeout: float) -> float:
    """Type a question on the Ask page, press Enter, and return the seconds until ``expected`` shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def ready(d):
        box = d.find_element(By.CSS_SELECTOR, 'div[data-testid="stTextInput"] input')
        if not (box.is_displayed() and box.is_enabled()):
            return None
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        return box

    box = wait_for(d, ready, timeout, "the question box")
    box.send_keys(question)
    t0 = time.monotonic()  # typing is the user's time, not the app's
    box.send_keys(Keys.ENTER)
    wait_for(d, lambda d: d.execute_script("return document.body.innerText.includes(arguments[0])", expected),
             timeout, repr(expected))
    seconds = time.monotonic() - t0
    wait_idle(d, timeout)
    return seconds


IDLE = """return document.querySelectorAll('[data-stale="true"]').length === 0
  && !Array.from(document.querySelectorAll('[data-testid="stStatusWidget"]')).some(e => /Running|Stop/.test(e.innerText))"""


def wait_idle(d, timeout: float) -> None:
    """Wait until the script run has finished and no element from the previous run is left."""
    def idle_twice(d):
        if d.execute_script(IDLE):
            time.sleep(0.3)
            return d.execute_script(IDLE)
        return False
    wait_for(d, idle_twice, timeout, "the app to finish its run")


def test_ask_in_a_real_browser(server, driver, hostile_kb, expected):
    from selenium.common.exceptions import NoAlertPresentException

    reference = expected[POOLED]
    pooled = hostile_kb.ask(POOLED)
    first = pooled.citations[0]
    assert first.title in reference and f", p. {first.page}" in reference
    heading = f"{views.sources(pooled.citations)[0].numbers} {first.title}"

    driver.get(server["url"] + "/")
    asked = ask(driver, POOLED, reference, timeout=120)
    first_answer_after_start = time.monotonic() - server["started"]
    page = body_text(driver)
    assert heading in page
    assert "Download answer with references" in page and "Cited documents as BibTeX" in page
    assert "Deploy" not in page  # a tool for readers: no Deploy button or developer menu

    # hostile corpus text shows as text, and nothing in it runs
    hostile = hostile_kb.ask(HOSTILE_QUESTION)
    assert any(c.doc_id == "quokka-minutes" for c in hostile.citations), hostile.to_text()
    later = ask(driver, HOSTILE_QUESTION, "<script>alert(1)</script>", timeout=60)
    page = body_text(driver)
    assert HOSTILE_TITLE in page
    assert '<img src=x onerror="window.__pwned=1">' in page
    assert driver.execute_script("return window.__pwned === undefined")
    assert not driver.execute_script(
        "return Array.from(document.scripts).some(s => s.text.includes('alert(1)'))"
        " || document.querySelectorAll('img[src=\"x\"]').length > 0"
        " || Array.from(document.querySelectorAll('i')).some(e => e.textContent === 'draft')")
    driver.save_screenshot(str(artifacts() / "browser-hostile.png"))
    try:
        driver.switch_to.alert
        pytest.fail("an alert opened: corpus script ran")
    except NoAlertPresentException:
        pass

    driver.get(server["url"] + "/ask")  # the Ask page by its name too, not only at /
    third = ask(driver, PURPOSE, expected[PURPOSE], timeout=60)
    assert "Ask the evidence" in body_text(driver) and "Page not found" not in body_text(driver)
    shot = artifacts() / "browser-ask.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    timings = {"server_start_to_first_answer_s": round(first_answer_after_start, 2),
               "first_question_to_answer_s": round(asked, 2),
               "later_answers_s": [round(later, 2), round(third, 2)]}
    (artifacts() / "browser-timings.json").write_text(json.dumps(timings, indent=1))
    print(timings)


def test_the_maps_draw_with_nothing_fetched_off_the_machine(server, driver):
    """The Places map and the evidence map draw their borders and bubbles from what the app ships:
    every request the pages make goes to the app's own address."""
    for path, shot in (("/places", "browser-places.png"), ("/evidence-map", "browser-evidence-map.png")):
        driver.get(server["url"] + path)
        wait_for(driver, lambda d: d.execute_script(
            "return document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length") > 0, 90,
            f"a chart on {path}")
        wait_idle(driver, 30)
        urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        outside = [u for u in urls if not u.startswith((server["url"], "data:", "blob:"))]
        assert urls and not outside, outside
        driver.save_screenshot(str(artifacts() / shot))
    assert "Page not found" not in body_text(driver) and "passages" in body_text(driver)


def test_a_bubble_click_lists_its_passages_and_the_report_shows_tables(server, driver, hostile_kb):
    """What a programme designer and a researcher check by eye: a click on a bubble of the evidence map
    lists that cell's passages (as many as the bubble says); the map shows no "None"; the Evaluation
    page shows its report as tables, not as Markdown source."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.get(server["url"] + "/evidence-map")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '.vega-embed .mark-symbol path[aria-label^="column: "]'),
             90, "the bubbles")
    wait_idle(driver, 30)
    shown = driver.find_element(By.TAG_NAME, "h3").text
    labels = [m.get_attribute("aria-label") for m in
              driver.find_elements(By.CSS_SELECTOR, '.vega-embed .mark-symbol path[aria-label^="column: "]')]
    cells = [dict(part.split(": ", 1) for part in label.split("; ")) for label in labels]
    # the smallest bubble that is not the cell already listed
    cell = min((c for c in cells if f"{c['row']} × {c['column']}" not in shown), key=lambda c: int(c["passages"]))
    onto = hostile_kb.ontology
    region = onto.regions()
    counted = Counter(key for p in hostile_kb.all_passages()
                      for key in {(d, region.get(pl, pl)) for d in p.dimensions for pl in p.places})
    frame = views.evidence_table(counted, "dimension", "region", onto, hostile_kb.documents())
    assert frame.loc[cell["row"], cell["column"]] == int(cell["passages"])  # the bubble says what the stores hold
    mark = next(m for m in driver.find_elements(By.CSS_SELECTOR, ".vega-embed .mark-symbol path")
                if m.get_attribute("aria-label") == labels[cells.index(cell)])
    ActionChains(driver).move_to_element(mark).click().perform()
    heading = f"{cell['passages']} passages: {cell['row']} × {cell['column']}"
    wait_for(driver, lambda d: heading in d.find_element(By.TAG_NAME, "h3").text, 60, heading)
    wait_idle(driver, 30)
    assert "None" not in body_text(driver)
    driver.save_screenshot(str(artifacts() / "browser-bubble-click.png"))

    driver.get(server["url"] + "/evaluation")
    wait_for(driver, lambda d: d.execute_script("return document.querySelectorAll('table th').length") > 0, 60,
             "a report table")
    headers = driver.execute_script("return Array.from(document.querySelectorAll('table th')).map(e => e.innerText)")
    assert "MRR@10" in headers and "recall@5" in headers
    assert "| mode |" not in body_text(driver)  # the table drawn, not its Markdown source


# -- a shared deployment: reading open, changes behind sign-in --------------------------------------------
@pytest.fixture(scope="module")
def provider():
    """A real OpenID Connect provider on loopback, with one user whose name it asserts."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        claims = json.dumps({"name": "Alice Example", "email": "alice@example.org"}).encode()
        put = urllib.request.Request(f"{issuer}/users/alice", data=claims, method="PUT",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(put, timeout=10) as r:
            assert r.status == 204
        yield issuer


@pytest.fixture(scope="module")
def shared_server(corpus_kb, provider, driver, tmp_path_factory):
    home = tmp_path_factory.mktemp("shared") / "home"
    shutil.copytree(corpus_kb.settings.home, home, ignore=shutil.ignore_patterns("ingest.lock", "uploads", "eval"))
    with running_app(home, "streamlit-shared.log", KB_AUTH=provider, KB_AUTH_CLIENT_SECRET="loopback-only") as app:
        yield {**app, "home": home}


def button(d, label: str):
    """The visible button with this label, or None (read in one call, so a re-render cannot stale it)."""
    return d.execute_script(
        "return Array.from(document.querySelectorAll('button')).find("
        "b => b.innerText.trim() === arguments[0] && b.offsetParent !== null) || null", label)


def test_a_shared_deployment_needs_sign_in_to_change_it(shared_server, driver):
    from selenium.webdriver.common.by import By

    url = shared_server["url"]
    # reading is open: an answer without signing in
    driver.get(url + "/")
    ask(driver, POOLED, "[1]", timeout=120)
    # uploading and evaluating are not offered, and say how to get them
    driver.get(url + "/library")
    wait_for(driver, lambda d: "Sign in to add documents" in body_text(d), 60, "the library's sign-in notice")
    wait_idle(driver, 30)
    assert not driver.find_elements(By.CSS_SELECTOR, 'input[type="file"]')
    driver.get(url + "/evaluation")
    wait_for(driver, lambda d: "Sign in to run evaluations" in body_text(d), 60, "the evaluation's sign-in notice")
    wait_idle(driver, 30)
    assert button(driver, "Run evaluation") is None
    # signing in at the provider, and back
    wait_for(driver, lambda d: button(d, "Sign in"), 30, "a Sign in button").click()
    wait_for(driver, lambda d: d.find_elements(By.NAME, "sub"), 30, "the provider's sign-in form")
    assert driver.current_url.startswith(shared_server["url"].replace("127.0.0.1", "localhost").rsplit(":", 1)[0])
    driver.find_element(By.NAME, "sub").send_keys("alice")
    driver.find_element(By.XPATH, "//button[normalize-space()='Authorize']").click()
    wait_for(driver, lambda d: "Signed in as Alice Example" in body_text(d), 60, "the app, signed in")
    # now a document can be added, and the change is recorded with its author
    driver.get(url + "/library")
    upload = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'input[type="file"]'), 60, "the uploader")
    note = shared_server["home"].parent / "harbour-minutes.txt"
    note.write_text("Harbour board minutes\n\nThe harbour board met in spring to agree the dredging timetable "
                    "with the port authority and the county council.\n", encoding="utf-8")
    upload[0].send_keys(str(note))
    wait_for(driver, lambda d: "is in the knowledge base as" in body_text(d), 120, "the upload to be ingested")
    changes = [json.loads(line) for line in (shared_server["home"] / "auth" / "changes.jsonl").read_text().splitlines()]
    assert changes[-1]["user"] == "Alice Example" and changes[-1]["action"] == "upload"
    assert "harbour-minutes.txt" in changes[-1]["what"]
    driver.get(url + "/evaluation")
    wait_for(driver, lambda d: button(d, "Run evaluation"), 60, "the Run evaluation button")
    # signing out closes them again (the provider may ask to confirm ending its session)
    button(driver, "Sign out").click()

    def signed_out(d):
        confirm = button(d, "End session")
        if confirm is not None:
            confirm.click()
            return False
        return d.current_url.startswith(url) and "Reading is open; sign in" in body_text(d)

    wait_for(driver, signed_out, 60, "the app, signed out")
    driver.get(url + "/library")
    wait_for(driver, lambda d: "Sign in to add documents" in body_text(d), 60, "the library locked again")
