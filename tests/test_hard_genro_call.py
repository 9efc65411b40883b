"""genro-storage `call`: `return_output` gives str; `async_mode` returns None."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storied import StorageManager


@pytest.fixture
def storage(tmp_path: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "mem", "type": "memory"}, {"name": "disk", "type": "local",
                                                       "base_path": str(tmp_path)}])
    return sm


def test_return_output_is_str(storage: StorageManager) -> None:
    node = storage.node("mem:a.txt")
    node.write_text("héllo")
    out = node.call(sys.executable, "-c", "import sys; print(open(sys.argv[1]).read())", node,
                    return_output=True)
    assert isinstance(out, str)
    assert out.strip() == "héllo"


def test_return_output_false_gives_none(storage: StorageManager) -> None:
    node = storage.node("disk:b.txt")
    node.write_text("x")
    assert node.call(sys.executable, "-c", "pass") is None


def test_failure_raises_in_sync_mode(storage: StorageManager) -> None:
    node = storage.node("mem:c.txt")
    node.write_text("x")
    with pytest.raises(subprocess.CalledProcessError):
        node.call(sys.executable, "-c", "raise SystemExit(3)", node)


def test_async_mode_returns_none_and_calls_back_after_upload(storage: StorageManager) -> None:
    node = storage.node("mem:d.txt")
    node.write_text("old")
    done = threading.Event()
    seen: list[str] = []

    def on_done() -> None:
        seen.append(node.read_text())  # the upload has happened before the callback
        done.set()

    script = "import sys, time; time.sleep(0.2); open(sys.argv[1], 'w').write('new')"
    result = node.call(sys.executable, "-c", script, node, callback=on_done, async_mode=True)
    assert result is None
    assert not done.is_set()  # returned before the command finished
    assert done.wait(20)
    assert seen == ["new"]
    assert node.read_text() == "new"


def test_async_failure_skips_callback_and_logs(storage: StorageManager,
                                                caplog: pytest.LogCaptureFixture) -> None:
    node = storage.node("mem:e.txt")
    node.write_text("keep")
    called: list[bool] = []
    node.call(sys.executable, "-c", "raise SystemExit(1)", node,
              callback=lambda: called.append(True), async_mode=True)
    for thread in [t for t in threading.enumerate() if t.name == "storied-call"]:
        thread.join(20)
    assert called == []
    assert node.read_text() == "keep"
    assert any("failed in the background" in r.getMessage() for r in caplog.records)
