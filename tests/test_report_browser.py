"""Open a real report in headless Chromium: it renders, runs no failing script, and asks no other host.

Chromium is driven over ``--remote-debugging-pipe`` (the DevTools protocol on fds 3 and 4), so the test
sees every network request, console message, exception and CSP violation as an event, not by grepping
logs. Set TLADVISOR_KEEP_SCREENSHOT=1 to keep the screenshots under reports/screenshots/.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import dependency_missing
from PIL import Image

from tladvisor.builtin.report import write_report
from tladvisor.report.demo import demo_run

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = REPO_ROOT / "reports" / "screenshots"
WINDOW = (1280, 2400)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", f"--window-size={WINDOW[0]},{WINDOW[1]}")


def find_chromium() -> str:
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    found = next((path for path in map(shutil.which, names) if path), None)
    if found:
        return found
    if os.name == "posix" and os.geteuid() == 0 and os.environ.get("CI") == "true":
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = next((path for path in map(shutil.which, names) if path), None)
        if found:
            return found
    dependency_missing("chromium is not installed (apt-get install chromium; as root with CI=true the test installs it)")


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe (NUL-separated JSON)."""

    def __init__(self, binary: str, profile_dir: Path, log_path: Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        arguments = [binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "about:blank"]
        # Chromium reads commands on fd 3 and writes replies on fd 4; dup2 clears close-on-exec there only.
        self.pid = os.posix_spawn(binary, arguments, os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, to_browser_read, 3), (os.POSIX_SPAWN_DUP2, from_browser_write, 4)])
        for fd in (to_browser_read, from_browser_write, log_fd):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive(deadline))

    def drain(self, seconds: float) -> None:
        """Collect whatever arrives in the next ``seconds`` (late requests, console messages)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._receive(deadline))
        except TimeoutError:
            pass

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its debugging pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        os.close(self._to_browser)
        os.close(self._from_browser)


# Clicks the "accuracy" header of the trials table twice and reads the first row's accuracy each time.
SORT_CHECK = """(() => {
  const table = document.querySelector('#tuning table.sortable');
  const header = [...table.querySelectorAll('thead th')].find(th => th.textContent.trim() === 'accuracy');
  const column = [...header.parentNode.children].indexOf(header);
  const first = () => table.tBodies[0].rows[0].cells[column].textContent.trim();
  header.click(); const ascending = first();
  header.click(); const descending = first();
  return {ascending, descending, sort: header.getAttribute('aria-sort')};
})()"""

PAGE_FACTS = """(() => ({
  title: document.title,
  sections: [...document.querySelectorAll('main > section')].map(s => s.id),
  charts: document.querySelectorAll('svg.chart').length,
  images: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
  brokenImages: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length,
  height: document.documentElement.scrollHeight,
  verdictWidth: document.querySelector('#verdict').getBoundingClientRect().width,
  // #26 item 6: the trials table fits its column at 1280 px (no column cut off behind a scrollbar)
  trialColumns: [...document.querySelectorAll('#tuning table.trials thead th')].map(th => th.textContent.trim()),
  trialsOverflow: (w => w.scrollWidth - w.clientWidth)(document.querySelector('#tuning table.trials').parentNode),
  // the parallel-coordinates chart's labels do not overlap one another
  labelOverlaps: (() => {
    const boxes = [...document.querySelectorAll('#tuning svg.chart text')].map(t => [t, t.getBoundingClientRect()]);
    const hits = [];
    boxes.forEach(([ta, a], i) => boxes.slice(i + 1).forEach(([tb, b]) => {
      if (ta.closest('svg') === tb.closest('svg') && a.width && b.width && a.left < b.right - 1 &&
          b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
        hits.push(ta.textContent + ' / ' + tb.textContent);
    }));
    return hits;
  })(),
}))()"""


@pytest.fixture(scope="module")
def browser_session(tmp_path_factory):
    binary = find_chromium()
    folder = tmp_path_factory.mktemp("browser")
    run = demo_run(folder, classes=("circle", "square", "stripes", "<script>alert(1)</script>"),
                   skipped_paths=('bad/"><img src=x onerror=alert(1)>.jpg',))
    _, report_path = write_report(run=run, out_dir=run.out_dir, sections=[])
    devtools = DevTools(binary, folder / "profile", folder / "chromium.log")
    try:
        target = next(t for t in devtools.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = devtools.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.send(f"{domain}.enable", session=session)
        devtools.send("Emulation.setDeviceMetricsOverride", {"width": WINDOW[0], "height": WINDOW[1],
                                                             "deviceScaleFactor": 1, "mobile": False}, session=session)
        navigation = devtools.send("Page.navigate", {"url": report_path.as_uri()}, session=session)
        devtools.wait_for("Page.loadEventFired")
        devtools.drain(0.5)

        def evaluate(expression: str):
            return devtools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                 session=session)["result"]["value"]

        facts = evaluate(PAGE_FACTS)
        screenshot = base64.b64decode(devtools.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
        pdf = base64.b64decode(devtools.send("Page.printToPDF", {"printBackground": True}, session=session)["data"])
        full_page = None
        if os.environ.get("TLADVISOR_KEEP_SCREENSHOT"):
            devtools.send("Emulation.setDeviceMetricsOverride", {"width": WINDOW[0], "height": min(facts["height"], 16000),
                                                                 "deviceScaleFactor": 1, "mobile": False}, session=session)
            full_page = base64.b64decode(devtools.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
        sorting = evaluate(SORT_CHECK)
        devtools.drain(0.3)
    finally:
        devtools.close()
    shot = folder / "report.png"
    shot.write_bytes(screenshot)
    if os.environ.get("TLADVISOR_KEEP_SCREENSHOT"):
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_DIR / "report.png")
        (SCREENSHOT_DIR / "report-full-page.png").write_bytes(full_page)
    return {"report": report_path, "navigation": navigation, "events": devtools.events, "facts": facts,
            "screenshot": shot, "pdf": pdf, "sorting": sorting, "log": (folder / "chromium.log").read_text(errors="replace")}


def test_report_renders_in_chromium(browser_session) -> None:
    facts = browser_session["facts"]
    assert "errorText" not in browser_session["navigation"]
    assert facts["title"] == "Transfer-learning advice for data"
    assert facts["sections"] == ["verdict", "dataset", "similarity", "scenarios", "tuning", "reproduce"]
    assert facts["charts"] >= 14 and facts["images"] == 22 and facts["brokenImages"] == 0
    assert 900 < facts["verdictWidth"] <= 1100  # laid out for a laptop screen, not squeezed


def test_the_tuning_section_fits_a_1280_px_window(browser_session) -> None:
    facts = browser_session["facts"]
    assert "balanced accuracy" in facts["trialColumns"] and "gradual unfreeze" in facts["trialColumns"]
    assert facts["trialsOverflow"] <= 0, f"the trials table is {facts['trialsOverflow']} px wider than its column"
    assert facts["labelOverlaps"] == []


def test_screenshot_is_a_real_page(browser_session) -> None:
    with Image.open(browser_session["screenshot"]) as image:
        assert image.size == WINDOW
        small = image.convert("RGB").resize((160, 300))
        colours = len(small.getcolors(maxcolors=1 << 16) or ())
        header = small.getpixel((80, 4))  # the dark page header
    assert browser_session["screenshot"].stat().st_size > 50_000 and colours > 200
    assert max(header) < 80


def test_no_request_leaves_the_file_and_no_script_error(browser_session) -> None:
    events = browser_session["events"]
    requested = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
    assert [url for url in requested if url.startswith("file://")] == [browser_session["report"].as_uri()]
    failed = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
    assert failed == []
    exceptions = [e["params"]["exceptionDetails"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    console_errors = [e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"]["type"] in ("error", "assert")]
    log_errors = [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error"]  # CSP violations land here
    assert exceptions == [] and console_errors == [] and log_errors == []
    page_lines = [line for line in browser_session["log"].splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not any("Uncaught" in line or "ERR_" in line for line in page_lines), page_lines


def test_tables_sort_and_the_page_prints(browser_session) -> None:
    sorting = browser_session["sorting"]
    assert sorting == {"ascending": "0.548", "descending": "0.884", "sort": "descending"}  # pruned: no value
    pdf = browser_session["pdf"]
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
