"""The guide's code runs: every ``python`` and ``sh`` block of docs/index.md and docs/guide/*.md.

Each page runs in its own subprocess, in a fresh temporary directory (its working directory,
``HOME`` and ``XDG_STATE_HOME``), its blocks in order and sharing one namespace, as a reader
would type them. ``sh`` blocks run under ``bash -euo pipefail`` with this venv's ``storied`` on
``PATH``. Two fence attributes keep a block from running (a python one is still compiled):
``{.no-run}`` for what cannot run here (``pip install``, a server, a network, a pytest file) and
``{.pending}`` for a feature another helper is still building: set ``STORIED_DOC_RUN_ALL=1`` to
run the pending ones too and see which are ready to be enabled (drop the attribute then).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([DOCS / "index.md", *(DOCS / "guide").glob("*.md")])
RUN_ALL = os.environ.get("STORIED_DOC_RUN_ALL") == "1"
#: Languages whose blocks are executed; every other fence (console, yaml, json...) is text.
RUNNABLE = {"python", "sh"}
#: Third-party modules the examples import that come from extras (``all``, ``test``, ``bench``):
#: a page needing one that is not installed is skipped, naming it.
OPTIONAL_MODULES = ("cryptography", "PIL", "imagehash", "xmldiff", "lxml", "pandas", "fsspec",
                    "httpx", "starlette", "jinja2", "standardwebhooks", "genro_storage", "uvicorn")

_FENCE = re.compile(
    r"^(?P<indent> *)(?P<ticks>`{3,})\s*(?P<lang>[\w-]*)\s*(?P<attrs>\{[^}]*\})?\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    no_run: bool  # {.no-run}: never runs here
    pending: bool  # {.pending}: runs only with STORIED_DOC_RUN_ALL=1
    code: str

    @property
    def runs(self) -> bool:
        """Whether this block is executed by :func:`test_page_examples_run`."""
        return self.lang in RUNNABLE and not self.no_run and (RUN_ALL or not self.pending)


def blocks_of(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (fences may be indented, as in lists);
    ``page`` names it relative to ``root``."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks = len(m["indent"]), m["ticks"]
        attrs = m["attrs"] or ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        assert j < len(lines), f"{path.name}:{i + 1}: unclosed code fence"
        out.append(Block(path.relative_to(root).as_posix(), i + 1, m["lang"],
                         ".no-run" in attrs, ".pending" in attrs, "\n".join(body) + "\n"))
        i = j + 1
    return out


# The driver a page's subprocess runs: blocks from a JSON file, one namespace, stop at the first
# failure with the page and line of the block.
_DRIVER = r"""
import json, subprocess, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
optional = set(sys.argv[2].split(","))
ns = {"__name__": "__doc_example__"}
for b in blocks:
    where = f"{b['page']}:{b['line']}"
    if b["lang"] == "python":
        try:
            exec(compile(b["code"], where, "exec"), ns)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in optional:
                raise
            print(f"MISSING {exc.name} (needed by {where})", file=sys.stderr)
            sys.exit(3)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED python block at {where}", file=sys.stderr)
            sys.exit(1)
    else:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]])
        if done.returncode:
            print(f"FAILED sh block at {where} (exit {done.returncode})", file=sys.stderr)
            sys.exit(1)
    sys.stdout.flush()
"""


def _run_page(blocks: list[Block], tmp: Path, optional: tuple[str, ...] = OPTIONAL_MODULES
              ) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / ".blocks.json"
    spec.write_text(json.dumps([b.__dict__ for b in blocks]), encoding="utf-8")
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORIED_"))}
    env.update({
        "HOME": str(work), "XDG_STATE_HOME": str(tmp / "state"), "NO_COLOR": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "100",
    })
    return subprocess.run([sys.executable, "-c", _DRIVER, str(spec), ",".join(optional)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Every runnable block of the page runs without error, in order; the rest compile."""
    blocks = blocks_of(page)
    for b in blocks:
        if b.lang == "python" and not b.runs:
            compile(b.code, f"{b.page}:{b.line}", "exec")  # a not-executed example still parses
    runnable = [b for b in blocks if b.runs]
    if not runnable:
        assert any(b.no_run or b.pending for b in blocks), f"{page.name}: no code at all"
        return
    done = _run_page(runnable, tmp_path)
    if done.returncode == 3 and "MISSING " in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])  # an optional extra is not installed
    assert done.returncode == 0, (
        f"{page.name}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")


def test_every_python_block_is_python() -> None:
    """No example hides under a misspelt language: fences are python, sh, or a text format."""
    known = RUNNABLE | {"console", "yaml", "json", "toml", "text", "ini", ""}
    for page in PAGES:
        for b in blocks_of(page):
            assert b.lang in known, f"{b.page}:{b.line}: unknown fence language {b.lang!r}"


def test_fence_parser_reads_attributes(tmp_path: Path) -> None:
    """The parser sees languages, the no-run attribute, indented fences and line numbers."""
    page = tmp_path / "p.md"
    page.write_text("x\n```python\na = 1\n```\n\n- item\n\n    ```sh {.no-run}\n    ls\n    ```\n"
                    "````python {.pending}\nb = 2\n````\n", encoding="utf-8")
    found = [(b.line, b.lang, b.no_run, b.pending, b.code) for b in blocks_of(page, tmp_path)]
    assert found == [(2, "python", False, False, "a = 1\n"), (8, "sh", True, False, "ls\n"),
                     (11, "python", False, True, "b = 2\n")]


def test_runner_reports_the_failing_block_and_missing_extras(tmp_path: Path) -> None:
    """A failing block names its page and line; a missing optional module is told apart."""
    ok = Block("p.md", 3, "python", False, False, "x = 41\n")
    bad = Block("p.md", 9, "python", False, False, "assert x == 42\n")
    done = _run_page([ok, bad], tmp_path / "a")
    assert done.returncode == 1 and "FAILED python block at p.md:9" in done.stderr
    shell = Block("p.md", 12, "sh", False, False, "echo hi; exit 4\n")
    done = _run_page([ok, shell], tmp_path / "b")
    assert done.returncode == 1 and "p.md:12 (exit 4)" in done.stderr and "hi" in done.stdout
    missing = Block("p.md", 5, "python", False, False, "import storied_doc_absent_module\n")
    done = _run_page([missing], tmp_path / "c", optional=("storied_doc_absent_module",))
    assert done.returncode == 3 and "MISSING storied_doc_absent_module" in done.stderr
    done = _run_page([missing], tmp_path / "d", optional=())
    assert done.returncode == 1  # not an optional module: a real failure


def pending_blocks() -> list[str]:
    """``page:line`` of every ``{.pending}`` block (what the coordinator may enable later)."""
    return [f"{b.page}:{b.line}" for p in PAGES for b in blocks_of(p) if b.pending]


if __name__ == "__main__":  # python tests/test_doc_examples.py: list the pending examples
    print("\n".join(pending_blocks()))

