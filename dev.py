#!/usr/bin/env python3
"""Bootstrap and run: ``python3 dev.py demo`` | ``test [pytest args]`` | ``bench`` | ``lint`` |
``docs [serve]`` (the documentation site into ``site/``, warnings as errors).

Creates ``.venv`` beside this file on first use (Python 3.11+, standard library only) and
re-installs when ``pyproject.toml`` changes. ``demo`` installs only storied itself (its three
small dependencies); ``test``, ``lint`` and ``bench`` install every extra plus the test and
benchmark tools.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _ensure_env(full: bool = True) -> None:
    """The venv with storied installed: with every extra when ``full``, else storied alone
    (a full install serves the demo too)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before any install
        sys.exit("storied needs Python 3.11 or newer")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamps = [VENV / ".storied-stamp"] + ([] if full else [VENV / ".storied-stamp-demo"])
    if PY.exists() and any(s.exists() and s.read_text() == want for s in stamps):
        return
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    what = f"{ROOT}[all,test,bench]" if full else str(ROOT)
    print(f"installing storied{'[all,test,bench]' if full else ''} into .venv ...", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", what], check=True)
    stamps[-1].write_text(want)


#: Debian packages the tests use: a command on PATH (or a path pattern) -> its package.
_DEBIAN_TOOLS = {
    "chromium": "chromium",  # the HTML-diff browser test
    "/usr/sbin/smbd": "samba",  # the smb mount tests (a private smbd on 127.0.0.1)
    "/usr/lib/*/libarchive.so.13": "libarchive13",  # the libarchive mount type
}


def _ensure_debian_tools() -> None:
    """Install the missing Debian packages of :data:`_DEBIAN_TOOLS`, when we can (root + apt):
    one ``apt-get update``, one ``apt-get install`` for all of them. Installing ``samba`` starts
    no daemon here (no init system); the tests start their own smbd on loopback."""
    import glob
    import shutil

    if not shutil.which("apt-get") or os.geteuid() != 0:
        return
    missing = [
        pkg for tool, pkg in _DEBIAN_TOOLS.items()
        if not (glob.glob(tool) if tool.startswith("/") else shutil.which(tool))
    ]
    if not missing:
        return
    print(f"installing Debian packages for the tests: {' '.join(missing)} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["install", "-y", "-qq", "--no-install-recommends", *missing]
    for step in (["update", "-qq"], install):
        subprocess.run(["apt-get", *step], check=False, stdout=subprocess.DEVNULL, env=env)


def _ensure_npm_tools() -> None:
    """Install Azurite (the Azure Storage emulator the Azure tests start on 127.0.0.1) from npm
    when npm is there and Azurite is not; without npm those tests skip, saying why."""
    import shutil

    if shutil.which("azurite-blob") or not shutil.which("npm"):
        return
    print("installing Azurite from npm for the Azure tests ...", flush=True)
    subprocess.run(["npm", "install", "-g", "--silent", "--no-audit", "--no-fund", "azurite@3"],
                   check=False, stdout=subprocess.DEVNULL)


def _workers(rest: list[str]) -> list[str]:
    """pytest-xdist's ``-n``: one worker per CPU (at most 4; each starts its own test servers
    on free ports), unless the caller chose (``-n``, ``-p no:xdist``) or names single tests."""
    cpus = min(os.cpu_count() or 1, 4)
    chose = any(a.startswith(("-n", "--numprocesses", "-p")) or "::" in a for a in rest)
    return [] if chose or cpus < 2 else ["-n", str(cpus)]


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    _ensure_env(full=command != "demo")
    if command == "demo":
        return subprocess.call([str(BIN / "storied"), "demo", *rest])
    if command == "test":
        _ensure_debian_tools()
        _ensure_npm_tools()
        return subprocess.call([str(PY), "-m", "pytest", *_workers(rest), *rest], cwd=ROOT)
    if command == "lint":
        return subprocess.call([str(PY), "-m", "ruff", "check", "src", "tests", "bench"], cwd=ROOT)
    if command == "bench":
        return subprocess.call([str(PY), str(ROOT / "bench" / "run_all.py"), *rest], cwd=ROOT)
    if command == "storied":
        return subprocess.call([str(BIN / "storied"), *rest])
    if command == "docs":  # python3 dev.py docs [serve]: the site, warnings as errors
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        if rest[:1] == ["serve"]:
            return subprocess.call([str(PY), "-m", "mkdocs", "serve", "--strict", *rest[1:]],
                                   cwd=ROOT, env=env)
        return subprocess.call([str(PY), "-m", "mkdocs", "build", "--strict", "--site-dir",
                                str(ROOT / "site"), *rest], cwd=ROOT, env=env)
    sys.exit(f"unknown command {command!r}: use demo, test, lint, bench, docs or storied")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
