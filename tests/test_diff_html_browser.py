"""The HTML version diff opened in headless Chromium (Debian's ``chromium`` package): the page
renders offline, shows the changed lines, and puts the old version left and the new one right."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from storied import StorageManager

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)

OLD = "".join(f"setting_{i} = {i}\n" for i in range(60))
NEW = (
    OLD.replace("setting_7 = 7\n", "setting_7 = seven & <b>bold</b>\n")
    .replace("setting_30 = 30\n", "")
    .replace("setting_50 = 50\n", "setting_50 = 50\nsetting_50b = inserted\n")
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def page(tmp_path: Path) -> Path:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    node = sm.node("v:app/settings.conf")
    node.write_text(OLD)
    node.write_text(NEW)
    target = tmp_path / "diff.html"
    target.write_text(node.diff_versions_text(format="html"), encoding="utf-8")
    return target


def test_dom_shows_the_changed_lines(page: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<table" in dom and 'class="diff"' in dom
    assert "setting_7 = <del>7</del>" in dom
    assert "setting_7 = <ins>seven &amp; &lt;b&gt;bold&lt;/b&gt;</ins>" in dom
    assert '<td class="del">setting_30 = 30</td>' in dom
    assert '<td class="add">setting_50b = inserted</td>' in dom
    assert "v:app/settings.conf@" in dom and "&minus;" not in dom and "\u22122 removed" in dom


def test_screenshot_is_side_by_side(page: Path, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    with image_module.open(shot) as img:
        rgb = img.convert("RGB")
        width, height = rgb.size
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        red = (0xFF, 0xEB, 0xE9)  # td.del background
        green = (0xE6, 0xFF, 0xEC)  # td.add background
        assert dict((c, n) for n, c in colours).get(red, 0) > 500
        left = {rgb.getpixel((x, y)) for x in range(0, width // 2, 4) for y in range(0, height, 4)}
        right = {
            rgb.getpixel((x, y)) for x in range(width // 2, width, 4) for y in range(0, height, 4)
        }
    assert red in left and red not in right
    assert green in right and green not in left
