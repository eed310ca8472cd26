"""Open a local HTML file in headless Chromium and report what a reader's browser saw, through the
Chrome DevTools protocol over ``--remote-debugging-pipe`` (Python's stdlib only: the browser
reads NUL-terminated JSON commands on its fd 3 and writes replies and events on its fd 4).

:func:`load_page` attaches to a blank tab, turns on the console and log domains, navigates to the
file, waits for the load event, then asks the DevTools runtime (not a script in the page) for
every ``<img>``'s ``complete`` and ``naturalWidth``, for an element's text and for the page's
width against the window's, and takes a full-page screenshot. Every console error, uncaught
exception and browser log entry of level error (a resource that failed to load is one) is
collected.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--window-size=1280,1600"]
IMAGES = ("JSON.stringify(Array.from(document.images, i => "
          "({src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth})))")

WIDTHS = ("JSON.stringify({scroll: document.documentElement.scrollWidth, "
          "client: document.documentElement.clientWidth})")


@dataclass
class PageVisit:
    images: list[dict]                 # per <img>: src, complete, naturalWidth
    text: str                          # textContent of the element asked for ("" if absent)
    widths: dict                       # the page's scrollWidth and the window's clientWidth (CSS px)
    errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""


class DevToolsPipe:
    """One Chromium process and its DevTools pipe; commands are answered in order of ``id``."""

    def __init__(self, profile: Path, log: Path, timeout: float = 60.0):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._log = open(log, "wb")            # noqa: SIM115 (closed in close())
        self.pid = os.posix_spawn(
            CHROMIUM, [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"], os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                          (os.POSIX_SPAWN_DUP2, self._log.fileno(), 1),
                          (os.POSIX_SPAWN_DUP2, self._log.fileno(), 2)])
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.deadline = time.monotonic() + timeout
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, since: int = 0) -> dict:
        """The first event ``method`` from ``events[since]`` on, waiting for it if need be."""
        for event in self.events[since:]:
            if event.get("method") == method:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > self.deadline:
                raise TimeoutError("headless Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("headless Chromium closed its DevTools pipe (see its log)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError, TimeoutError):
            pass
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            os.waitpid(self.pid, 0)
            self._log.close()


def load_page(html: Path, element_id: str, workdir: Path) -> PageVisit:
    """Load ``html`` from disk; the images, the text of ``element_id``, the errors, a screenshot."""
    browser = DevToolsPipe(workdir / "profile", workdir / "chromium.log")
    try:
        target = next(t for t in browser.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = browser.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                         "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        since = len(browser.events)
        browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", since)
        images = json.loads(_evaluate(browser, session, IMAGES))
        text = _evaluate(browser, session, f"(document.getElementById({json.dumps(element_id)}) || "
                                           "{textContent: ''}).textContent")
        widths = json.loads(_evaluate(browser, session, WIDTHS))
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                            session=session)
    finally:
        browser.close()
    return PageVisit(images, text, widths, _errors(browser.events), base64.b64decode(shot["data"]))


def _evaluate(browser: DevToolsPipe, session: str, expression: str):
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                         session=session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"evaluating {expression!r}: {reply['exceptionDetails']}")
    return reply["result"]["value"]


def _errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and error-level log entries, as text."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                              for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text', '')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            out.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".rstrip())
    return out
