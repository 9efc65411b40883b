"""``storied web`` on the command line: the printed URL, the token it demands, --read-only,
--token, and one-line errors with exit 1 (a port in use, a missing config)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    target = tmp_path / "storied.yaml"
    target.write_text(json.dumps([{"name": "docs", "type": "local",
                                   "base_path": str(tmp_path / "data"), "versioning": True}]))
    return target


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storied", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def served(config: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "storied", "web", "--config", str(config), "--port", "0",
         "--read-only", "--token", "tok-123"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_prints_the_url_binds_loopback_and_needs_the_token(
    served: subprocess.Popen[str],
) -> None:
    assert served.stdout is not None
    line = served.stdout.readline().strip()
    assert line.startswith("storied web: http://127.0.0.1:") and line.endswith("/?token=tok-123")
    base = line.split(": ", 1)[1].split("/?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/", timeout=10)
    assert refused.value.code == 403
    request = urllib.request.Request(base + "/", headers={"Authorization": "token tok-123"})
    with urllib.request.urlopen(request, timeout=10) as page:
        body = page.read().decode()
    assert "docs" in body and "portable" in body
    assert '<span class="badge">read-only</span>' in body  # --read-only
    first = urllib.request.Request(base + "/?token=tok-123", method="HEAD")
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(first, timeout=10)
    assert redirected.value.code == 303
    assert "HttpOnly" in redirected.value.headers["set-cookie"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_port_in_use_is_one_line_exit_1(config: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = run("web", "--config", str(config), "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot listen on 127.0.0.1:") and done.stderr.count(
        "\n") == 1


def test_missing_config_and_bad_options(tmp_path: Path) -> None:
    missing = run("web", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: configuration file")
    assert run("web", "--port", "70000").returncode == 2
    empty = run("web", "--config", str(tmp_path / "nope.yaml"), "--token", " ")
    assert empty.returncode == 2


def test_ctrl_c_stops_the_server_quietly(served: subprocess.Popen[str]) -> None:
    assert served.stdout is not None and served.stderr is not None
    line = served.stdout.readline()
    assert line.startswith("storied web: http://127.0.0.1:")
    base = line.split(": ", 1)[1].split("/?", 1)[0]
    for _ in range(100):  # serving (uvicorn's signal handlers in place)
        try:
            urllib.request.urlopen(base + "/", timeout=5)
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    served.send_signal(signal.SIGINT)
    assert served.wait(15) == 130  # the CLI's Ctrl-C code, after uvicorn shut down
    rest = served.stderr.read()
    assert "Traceback" not in rest and rest.strip() in ("", "error: interrupted")


def test_without_the_web_extra_a_clear_error(config: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from storied import StorageManager\n"
        "from storied.errors import MissingDependencyError\n"
        "from storied.web import create_app\n"
        "try:\n"
        "    create_app(StorageManager(), token='t')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert "pip install 'storied[web]'" in done.stdout, done.stderr
    cli = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['uvicorn'] = None\n"
         "from storied.cli.main import main; main()", "web", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 1 and cli.stderr.startswith("error: storied web needs uvicorn")
