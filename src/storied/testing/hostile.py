"""Hostile paths: inputs that try to leave a mount or confuse a server.

Each must either be refused with a ``ValueError``/``PermissionError``-family storied error or be
normalised to a path that stays inside the mount.
"""

from __future__ import annotations

__all__ = ["ESCAPES", "HOSTILE_PATHS", "RESERVED_NAMES"]

#: Paths that must be refused outright: they can only mean "outside the mount".
ESCAPES: tuple[str, ...] = (
    "..",
    "../secret.txt",
    "../../etc/passwd",
    "a/../../secret.txt",
    "a/b/../../../secret.txt",
    "./../secret.txt",
    "a/./../..",
    "..\\secret.txt",
    "a\\..\\..\\secret.txt",
    "%2e%2e/secret.txt",
    "%2E%2E/secret.txt",
    "a/%2e%2e/%2e%2e/secret.txt",
    "..%2fsecret.txt",
    "..%2Fsecret.txt",
    "%2e%2e%2fsecret.txt",
    "..%5csecret.txt",
    "\uff0e\uff0e/secret.txt",  # full-width dots
    "a/\u2025/secret.txt",  # two-dot leader, NFKC ".."
    "secret.txt\x00.png",
    "\x00",
    "a\nb/../../secret.txt",
    "C:/Windows/system32",
    "c:secret.txt",
    "..;/secret.txt/..",
    "....//....//secret.txt/../..",
)

#: Paths that may be normalised instead of refused, but must stay inside the mount.
CONTAINED: tuple[str, ...] = (
    "/etc/passwd",
    "//double//slashes//x.txt",
    "./dot/./x.txt",
    "a/b/",
    "....",
    "...",
    ".hidden",
    "a..b",
    "..a",
    "~/x.txt",
    "$HOME/x.txt",
    "%00x.txt",
)

#: Paths a user may not name: storied's reserved area at any depth (``StoragePermissionError``)
#: and temporary-file names that listings hide (``InvalidPathError``).
RESERVED_NAMES: tuple[str, ...] = (
    ".storied",
    ".storied/format.json",
    "a/.storied",
    "a/.storied/refs/x/refs.json",
    "a/b/.storied/x",
    "/.storied//x",
    "./.storied/x",
    "x.storied-tmp-1",
    "a/.x.storied-tmp-123-4",
    "a/.storied-tmp-/b",
    ".STORIED/format.json",
    "a/.Storied/refs.json",
    ".storied./x",
    "a/.storied /x",
    "x.STORIED-TMP-1",
)

#: The whole corpus.
HOSTILE_PATHS: tuple[str, ...] = ESCAPES + CONTAINED
