"""The documentation site builds with warnings as errors, and holds what it promises.

``mkdocs build --strict`` (mkdocs-material + mkdocstrings) into a temporary directory: a broken
link, a missing anchor, a page left out of the nav or a docstring mkdocstrings cannot render
fails the build. Skipped only when the ``docs`` tools are not installed.
"""

from __future__ import annotations

import importlib.util
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

needs_mkdocs = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "material", "mkdocstrings")),
    reason="the docs tools are not installed (pip install mkdocs-material 'mkdocstrings[python]')",
)


def _nav_files(nav: object) -> list[str]:
    """Every page path named in an mkdocs nav structure."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "NO_MKDOCS_2_WARNING": "1",
             "HOME": str(out)},
    )
    elapsed = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    # CPU time, not wall time: the machine may be shared (~5 s of CPU when idle)
    assert cpu < 60, f"the site took {cpu:.0f} s of CPU ({elapsed:.0f} s) to build"
    return out


@needs_mkdocs
def test_every_guide_page_is_built_and_in_the_nav(site: Path) -> None:
    """Each docs/guide/*.md is in mkdocs.yml's nav and becomes a page of the site."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = set(_nav_files(config["nav"]))
    for page in sorted((DOCS / "guide").glob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        assert rel in in_nav, f"{rel} is not in mkdocs.yml's nav"
        assert (site / "guide" / page.stem / "index.html").is_file(), rel
    assert (site / "index.html").is_file()


@needs_mkdocs
@pytest.mark.parametrize(("page", "anchors"), [
    ("manager", ["storied.StorageManager.configure", "storied.StorageManager.verify",
                 "storied.StorageManager.create_snapshot", "storied.StorageManager.find_duplicates",
                 "storied.StorageManager.record_mode", "storied.StorageManager.on"]),
    ("node", ["storied.StorageNode.read_text", "storied.StorageNode.copy_to",
              "storied.StorageNode.tag_version", "storied.StorageNode.diff_json_versions",
              "storied.StorageNode.lock", "storied.StorageNode.glob",
              "storied.StorageNode.move_to|storied.core.copying.TransferMethods.move_to"]),
    ("errors", ["storied.errors.StorageError", "storied.errors.PathEscapeError"]),
    ("capabilities", ["storied.capabilities.Capabilities"]),
    ("info", ["storied.info.Info"]),
    ("aio", ["storied.aio.AsyncStorageManager", "storied.aio.AsyncStorageNode"]),
    ("fsspec", ["storied.fsspec.StoriedFileSystem"]),
    ("testing", ["storied.testing.mock.MockBackend", "storied.testing.recording"]),
    ("events", ["storied.events.EventBus"]),
    ("crypto", ["storied.crypto.Keyring"]),
    ("optimize", ["storied.optimize.DuplicateGroup", "storied.optimize.find_duplicates"]),
    ("web", ["storied.web.create_app"]),
])
def test_reference_pages_are_generated_from_docstrings(site: Path, page: str,
                                                       anchors: list[str]) -> None:
    """The API reference renders the public names (mkdocstrings ``:::`` directives)."""
    html = (site / "reference" / page / "index.html").read_text(encoding="utf-8")
    for anchor in anchors:  # "a|b": either id
        assert any(f'id="{a}"' in html for a in anchor.split("|")), f"reference/{page}: {anchor}"
    assert ":class:<code>" not in html and ":meth:<code>" not in html  # roles made plain


@needs_mkdocs
def test_unexecuted_examples_are_marked_on_the_page(site: Path) -> None:
    """A block the example test does not run carries its class, which the CSS labels."""
    html = (site / "guide" / "object-lock" / "index.html").read_text(encoding="utf-8")
    css = (DOCS / "stylesheets" / "examples.css").read_text(encoding="utf-8")
    assert "no-run highlight" in html or "pending highlight" in html
    assert "not executed" in css


def test_nav_reader_finds_nested_pages() -> None:
    """The helper the nav check relies on reads nested sections and bare entries."""
    nav = ["index.md", {"Guide": [{"A": "guide/a.md"}, "guide/b.md"]}, {"X": {"Y": "y.md"}}]
    assert _nav_files(nav) == ["index.md", "guide/a.md", "guide/b.md", "y.md"]
