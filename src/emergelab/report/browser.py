"""Open a page in headless Chromium over the DevTools protocol: console errors, image decoding, screenshot.

Used by the report's browser test and by ``emergelab report --screenshot``. Needs Debian's
``chromium`` (or ``$CHROMIUM``) and the ``websocket-client`` package; nothing is downloaded.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0"]


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    title: str = ""


class _CDP:
    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise TimeoutError(method)


def check_page(html_path: str | Path, screenshot: str | Path | None = None, width: int = 1280) -> PageCheck:
    """Load ``html_path`` in headless Chromium; return console errors and undecodable images."""
    exe = find_chromium()
    if exe is None:
        raise UserError("no Chromium found; install Debian's `chromium` (apt-get install chromium) or set $CHROMIUM")
    profile = tempfile.mkdtemp(prefix="emergelab-chromium-")
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        end = time.time() + 30
        while time.time() < end and port is None:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line or "")
            if m:
                port = int(m.group(1))
            elif not line and proc.poll() is not None:
                break
        if port is None:
            raise UserError("Chromium did not start its DevTools endpoint; check that `chromium --headless` runs here")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(req, timeout=10).read())
        cdp = _CDP(target["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", url=Path(html_path).resolve().as_uri())
        cdp.wait_for("Page.loadEventFired")
        result = PageCheck()
        for e in cdp.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                result.console_errors.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                result.console_errors.append(p["entry"].get("text", ""))
        js = ("JSON.stringify({title: document.title, imgs: Array.from(document.images).map("
              "i => [i.alt || i.src.slice(0, 40), i.complete && i.naturalWidth > 0])})")
        info = json.loads(cdp.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"])
        result.title = info["title"]
        result.images = len(info["imgs"])
        result.broken_images = [alt for alt, ok in info["imgs"] if not ok]
        if screenshot is not None:
            metrics = cdp.call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"])
            cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 16000),
                     deviceScaleFactor=1, mobile=False)
            shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        cdp.ws.close()
        return result
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
