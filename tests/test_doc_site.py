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
from typing import Any

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
              "storied.StorageNode.move_to"]),
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
    ("results", ["storied.versioning.engine.VerifyReport", "storied.SkipStrategy",
                 "storied.events.model.Event", "storied.core.locking.Lock"]),
])
def test_reference_pages_are_generated_from_docstrings(site: Path, page: str,
                                                       anchors: list[str]) -> None:
    """The API reference renders the public names (mkdocstrings ``:::`` directives)."""
    html = (site / "reference" / page / "index.html").read_text(encoding="utf-8")
    for anchor in anchors:  # "a|b": either id
        assert any(f'id="{a}"' in html for a in anchor.split("|")), f"reference/{page}: {anchor}"
    assert ":class:<code>" not in html and ":meth:<code>" not in html  # roles made plain


@needs_mkdocs
def test_docstring_doctests_render_as_code(site: Path) -> None:
    """``Examples:`` doctests become highlighted prompts, never Markdown quotes."""
    html = (site / "reference" / "manager" / "index.html").read_text(encoding="utf-8")
    assert '<span class="gp">&gt;&gt;&gt;' in html
    assert "<blockquote>" not in html


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


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("storied_docs_hooks",
                                                  DOCS / "reference" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_lists_every_adr_and_config_page(tmp_path: Path) -> None:
    """The nav hook fills the ADR section from docs/adr/ and adds CONFIG.md once it exists."""
    hooks = _hooks()
    (tmp_path / "adr").mkdir()
    (tmp_path / "adr" / "0002-b.md").write_text("# 0002: `bee`\n", encoding="utf-8")
    (tmp_path / "adr" / "0001-a.md").write_text("intro\n# ADR 0001: ay\n", encoding="utf-8")

    def nav() -> list[object]:
        return [{"Design": [{"Storage format": "FORMAT.md"}]},
                {"Decisions (ADRs)": ["adr/0001-a.md"]}]

    config = {"docs_dir": str(tmp_path), "nav": nav()}
    config = hooks.on_config(config)
    assert config["nav"][1] == {"Decisions (ADRs)": [{"ADR 0001: ay": "adr/0001-a.md"},
                                                     {"ADR 0002: bee": "adr/0002-b.md"}]}
    assert config["nav"][0] == {"Design": [{"Storage format": "FORMAT.md"}]}
    (tmp_path / "CONFIG.md").write_text("# keys\n", encoding="utf-8")
    config = hooks.on_config({"docs_dir": str(tmp_path), "nav": nav()})
    assert config["nav"][0]["Design"][0] == {"Configuration keys": "CONFIG.md"}


def test_hook_makes_sphinx_roles_plain_code() -> None:
    """``:class:`~a.B``` renders as ``B``, ``:meth:`x``` as ``x``, and ``::`` as ``:``."""
    hooks = _hooks()
    html = ("<p>See :class:<code>~storied.errors.StorageError</code> and "
            ":meth:<code>copy_to</code>::</p>")
    out = hooks.on_page_content(html, page=None, config=None, files=None)
    assert out == "<p>See <code>StorageError</code> and <code>copy_to</code>:</p>"
