"""App start-up and answer times in a real browser (Debian chromium, headless, via Selenium).

Starts ``kb app`` on loopback with the browser already open, as a user who runs the README's
main command and opens the page would; prints when the server answered its health check, when
the question box appeared, when the first answer showed, and how long later answers took.
Usage: ``python benchmarks/app.py [--runs 3] [--home DIR]`` (the knowledge base must be ingested).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["How did others handle pooled budgets?", "What helped partners agree a shared purpose?",
             "How do systems leaders build trust across organisations?", "What is an authorising environment?"]
BOX = 'div[data-testid="stTextInput"] input'
IDLE = """return document.querySelectorAll('[data-stale="true"]').length === 0
  && !Array.from(document.querySelectorAll('[data-testid="stStatusWidget"]')).some(e => /Running|Stop/.test(e.innerText))"""


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,2200", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(predicate, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError


def references(home: str) -> dict[str, str]:
    """What each question's first source shows, from the library: the page is waited for until it shows it."""
    sys.path.insert(0, str(ROOT))
    from kb.ui import views
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase(Settings.from_env(home=Path(home)))
    out = {}
    for q in QUESTIONS:
        c = kb.ask(q).citations[0]
        out[q] = views.citation_reference(c, kb.document(c.doc_id).meta.publisher)
    return out


def ask(d, question: str, expected: str) -> float:
    """Seconds from pressing Enter to the answer's first source on the page, the run finished."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = wait(lambda: d.find_element(By.CSS_SELECTOR, BOX))
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(question)
    t0 = time.monotonic()
    box.send_keys(Keys.ENTER)
    wait(lambda: d.execute_script("return document.body.innerText.includes(arguments[0])", expected)
         and d.execute_script(IDLE))
    return time.monotonic() - t0


def one_run(home: str, expected: dict[str, str]) -> dict:
    d = browser()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "KB_HOME": home}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("kb")), "app", "--address", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok")
        healthy = time.monotonic() - t0
        d.get(url)
        from selenium.webdriver.common.by import By
        wait(lambda: d.find_element(By.CSS_SELECTOR, BOX).is_enabled())
        box = time.monotonic() - t0
        first = ask(d, QUESTIONS[0], expected[QUESTIONS[0]])
        first_answer = time.monotonic() - t0
        later = [ask(d, q, expected[q]) for q in QUESTIONS[1:]]
        return {"health_s": healthy, "question_box_s": box, "first_answer_after_start_s": first_answer,
                "first_question_s": first, "later_answers_s": later}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        d.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", default=os.environ.get("KB_HOME", str(ROOT / ".kb")))
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    expected = references(args.home)
    runs = [one_run(args.home, expected) for _ in range(args.runs)]
    for i, r in enumerate(runs, 1):
        print(f"run {i}: healthy {r['health_s']:.1f} s, question box {r['question_box_s']:.1f} s, first answer "
              f"{r['first_answer_after_start_s']:.1f} s after start ({r['first_question_s']:.2f} s after Enter); "
              f"later answers {', '.join(f'{x:.2f}' for x in r['later_answers_s'])} s")
    later = [x for r in runs for x in r["later_answers_s"]]
    summary = {"runs": runs, "first_answer_after_start_median_s": statistics.median(r["first_answer_after_start_s"] for r in runs),
               "later_answer_median_s": statistics.median(later), "later_answer_max_s": max(later),
               "load_average": os.getloadavg()}
    print(f"median first answer after start {summary['first_answer_after_start_median_s']:.1f} s; later answers median "
          f"{summary['later_answer_median_s']:.2f} s, max {summary['later_answer_max_s']:.2f} s")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
