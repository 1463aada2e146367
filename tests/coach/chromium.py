"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no extra packages).

Opens a page in headless Chromium and records what a test needs: every network request the page made,
console errors and uncaught exceptions, the result of a JavaScript expression, and a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


@dataclass
class PageLoad:
    url: str
    requests: list[str] = field(default_factory=list)        # every URL the page asked for (the page included)
    errors: list[str] = field(default_factory=list)          # console errors, exceptions, log errors
    value: object = None                                     # result of the probe expression
    screenshot: Path | None = None

    @property
    def other_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url]


class Chromium:
    def __init__(self, profile_dir: Path):
        self._cmd_r, self._cmd_w = os.pipe()      # we write, chromium reads on fd 3
        self._evt_r, self._evt_w = os.pipe()      # chromium writes on fd 4, we read
        cmd_r, evt_w = self._cmd_r, self._evt_w

        def wire():
            os.dup2(cmd_r, 3)
            os.dup2(evt_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self._cmd_r)
        os.close(self._evt_w)
        self._id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue = queue.Queue()
        self._cv = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._evt_r, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()
                else:
                    self._events.put(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self._id += 1
        mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to {method}")
                self._cv.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def load(self, path_or_url: str | Path, probe: str, screenshot: Path | None = None,
             width: int = 390, height: int = 844, settle_s: float = 0.5) -> PageLoad:
        """Open a page at phone size, wait for load, run ``probe`` (a JS expression returning JSON-able data)."""
        url = path_or_url if str(path_or_url).startswith(("http", "file:", "data:")) else Path(path_or_url).resolve().as_uri()
        result = PageLoad(url=url)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
            self.send(m, session=sid)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True}, session=sid)
        while not self._events.empty():
            self._events.get_nowait()
        self.send("Page.navigate", {"url": url}, session=sid)
        loaded, deadline, quiet_until = False, time.monotonic() + 30, None
        while True:
            now = time.monotonic()
            if now > deadline or (quiet_until is not None and now > quiet_until):
                break
            try:
                ev = self._events.get(timeout=0.05)
            except queue.Empty:
                continue
            if ev.get("sessionId") != sid:
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Network.requestWillBeSent":
                result.requests.append(p["request"]["url"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                result.errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                            for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                result.errors.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                result.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Page.loadEventFired" and not loaded:
                loaded = True
                quiet_until = time.monotonic() + settle_s
        if not loaded:
            result.errors.append("page did not finish loading")
        value = self.send("Runtime.evaluate", {"expression": f"JSON.stringify({probe})", "returnByValue": True},
                          session=sid)
        result.value = json.loads(value["result"].get("value") or "null")
        if screenshot is not None:
            metrics = self.send("Page.getLayoutMetrics", session=sid)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = self.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1}},
                session=sid)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            result.screenshot = screenshot
        self.send("Target.closeTarget", {"targetId": target})
        return result

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
