"""storied web in a real browser: `storied web` runs as a subprocess on 127.0.0.1, headless
Chromium (Debian's ``chromium``) is driven through the DevTools protocol (websocket-client):
open a file's history, choose two versions, see the diff, restore one, and check through the
API that the restore made a new version with the old content. Screenshots of the history and
diff pages are saved in the test's tmp dir. Skipped when chromium is missing."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)
websocket = pytest.importorskip("websocket")

OLD = "".join(f"setting_{i} = {i}\n" for i in range(30))
MID = OLD.replace("setting_7 = 7\n", "setting_7 = seven\n")
NEW = MID.replace("setting_20 = 20\n", "setting_20 = twenty\nextra = <b>bold</b>\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, timeout: float = 25, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page target."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=15, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_page(self, contains: str) -> None:
        wait_for(lambda: self.js("document.readyState") == "complete"
                 and contains in self.js("location.href"), what=f"page {contains}")

    def screenshot(self, target: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        target.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, StorageManager]]:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "storied.yaml"
    config.write_text(json.dumps([{"name": "docs", "type": "local", "base_path": str(data),
                                   "versioning": True}]))
    storage = StorageManager()
    storage.configure(str(config))
    node = storage.node("docs:app/settings.conf")
    for text in (OLD, MID, NEW):
        node.write_text(text)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "storied", "web", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("storied web: http://127.0.0.1:"), server.stderr.read()
        yield line.split(": ", 1)[1].strip(), storage
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    assert CHROMIUM is not None
    port = free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000",
         f"--remote-debugging-port={port}", "--remote-allow-origins=*",
         f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    tools = None
    try:
        def page_target() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        tools = DevTools(wait_for(page_target, 20, "chromium's DevTools endpoint"))
        tools.call("Page.enable")
        yield tools
    finally:
        if tools is not None:
            tools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_history_diff_restore_in_chromium(site: tuple[str, StorageManager], browser: DevTools,
                                          tmp_path: Path) -> None:
    url, storage = site
    node = storage.node("docs:app/settings.conf")
    versions = node.versions
    base = url.split("/?", 1)[0]
    browser.call("Page.navigate", url=url)  # the token once: the cookie from now on
    browser.wait_page(base + "/")
    assert "docs" in browser.js("document.body.innerText")
    # the folder page's script fills in the version counts (allowed by the page's CSP)
    browser.call("Page.navigate", url=f"{base}/browse?path=docs:app")
    browser.wait_page("/browse?")
    wait_for(lambda: browser.js("(document.querySelector('td.count') || {}).textContent")
             == "3", what="the version count filled in by the script")
    browser.call("Page.navigate", url=f"{base}/file?path=docs:app/settings.conf")
    browser.wait_page("/file?")
    assert browser.js("document.querySelectorAll('tr[data-version]').length") == 3
    assert browser.js("!!document.querySelector('svg.timeline circle')")
    browser.screenshot(tmp_path / "history.png")
    oldest, newest = versions[0]["version_id"], versions[-1]["version_id"]
    # choose the two versions with the table's radio buttons (the script fills the form)
    browser.js(f"document.querySelector('input[name=pick-a][value=\"{oldest}\"]').click()")
    browser.js(f"document.querySelector('input[name=pick-b][value=\"{newest}\"]').click()")
    assert browser.js("document.getElementById('diff-a').value") == oldest
    browser.js("document.getElementById('diff-go').click()")
    browser.wait_page("/diff?")
    table = browser.js("document.querySelector('table.diff').innerText")
    assert "seven" in table and "twenty" in table and "<b>bold</b>" in table
    assert browser.js("document.querySelectorAll('table.diff b').length") == 0  # escaped
    assert browser.js("document.querySelectorAll('td.add').length") >= 2
    browser.screenshot(tmp_path / "diff.png")
    browser.js("document.getElementById('restore-old').click()")
    try:
        wait_for(lambda: "as a new version" in (browser.js(
            "(document.querySelector('.flash') || {}).innerText || ''") or ""), what="restored")
    except AssertionError:
        raise AssertionError(browser.js("location.href + ' ' + document.body.innerText")) from None
    assert browser.js("document.querySelectorAll('tr[data-version]').length") == 4
    after = node.versions
    assert len(after) == 4 and after[-1]["version_id"] not in {v["version_id"] for v in versions}
    assert node.read_text() == OLD
    for shot in ("history.png", "diff.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
