"""Shared by the differential tests against genro-storage 0.8.4
(tests/test_genro_differential.py, tests/test_genro_manager_differential.py): the two sides of
a case, how an outcome (a value or what was raised) is recorded, and how genro's and storied's
outcomes are compared."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import storied

genro = pytest.importorskip("genro_storage")

#: The builtin classes an exception is compared by (its storied/genro class is not compared).
BUILTINS: tuple[type[BaseException], ...] = (
    FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
    ValueError, TypeError, KeyError, IndexError, LookupError, UnicodeError, OSError,
    RuntimeError, NotImplementedError, AttributeError,
)


@dataclass(frozen=True)
class Raised:
    """What a call raised: the builtin classes it is an instance of, and its message."""

    kinds: frozenset[str]
    message: str


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or a :class:`Raised` describing what it raised."""
    try:
        return fn()
    except Exception as exc:
        kinds = frozenset(c.__name__ for c in BUILTINS if isinstance(exc, c))
        return Raised(kinds, str(exc))


@dataclass
class Side:
    """One library's manager, its mount name for this case, and the directory of its local
    mount."""

    lib: ModuleType
    sm: Any
    m: str
    root: Path

    def n(self, path: str = "") -> Any:
        """The node ``path`` on this case's mount."""
        return self.sm.node(f"{self.m}:{path}")


def memory_reset() -> None:
    """Empty fsspec's process-global memory filesystem (genro's memory mounts use it)."""
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


def fresh_memory() -> Iterator[None]:
    """Around a test: fsspec's process-global memory filesystem emptied before and after."""
    memory_reset()
    yield
    memory_reset()


def seed(side: Side) -> None:
    """The same small tree on every side: a text file, a binary file in a directory tree, and
    an empty directory."""
    side.n("a.txt").write_text("hello\nworld\n")
    side.n("dir/b.bin").write_bytes(b"\x00\x01\x02")
    side.n("dir/sub/c.txt").write_text("c")
    side.n("dir/z.txt").write_text("zz")
    side.n("empty").mkdir()
    side.n("dir/void").mkdir()


def make_side(lib: ModuleType, root: Path, mount: str) -> Side:
    root.mkdir()
    sm = lib.StorageManager()
    sm.configure([
        {"name": "loc", "protocol": "local", "base_path": str(root), "base_url": "/static/"},
        {"name": "mem", "protocol": "memory"},
        {"name": "bare", "protocol": "local", "base_path": str(root)},
    ])  # fmt: skip
    side = Side(lib, sm, mount, root)
    seed(side)
    return side


def sides(tmp_path: Path, mount: str) -> tuple[Side, Side]:
    return (make_side(genro, tmp_path / "genro", mount),
            make_side(storied, tmp_path / "storied", mount))  # fmt: skip


def deleted(node: Any) -> str:
    """Delete, ignoring the return value (storied's bool; see the ``delete_*`` cases)."""
    node.delete()
    return "deleted"


def node_view(lib: ModuleType, node: Any) -> tuple[str, bool]:
    """What a caller sees of a returned node: its full path, and that it is a StorageNode."""
    return node.fullpath, isinstance(node, lib.StorageNode)


def tree(side: Side, path: str = "") -> list[tuple[str, str]]:
    """Every file below ``path`` with its content, sorted (directories by their files)."""
    found = []
    for child in side.n(path).children():
        if child.is_dir():
            found.append((child.path + "/", ""))
            found.extend(tree(side, child.path))
        else:
            found.append((child.path, child.read_bytes().decode("latin-1")))
    return sorted(found)



def raised(*kinds: type[BaseException], message: str = "") -> Raised:
    """An expected exception: exactly these builtin classes (and their bases among
    ``BUILTINS``); ``message``, if given, must be part of the actual message."""
    names = {c.__name__ for c in BUILTINS for k in kinds if issubclass(k, c)}
    return Raised(frozenset(names), message)


def agrees(expected: Any, actual: Any) -> bool:
    """True when ``actual`` is ``expected`` (a :class:`Raised` matches by its exact builtin
    classes and, when it has one, a message contained in the actual one)."""
    if isinstance(expected, Raised):
        return (isinstance(actual, Raised) and expected.kinds == actual.kinds
                and expected.message in actual.message)  # fmt: skip
    if isinstance(expected, (list, tuple)):
        return (type(actual) is type(expected) and len(actual) == len(expected)
                and all(agrees(e, a) for e, a in zip(expected, actual, strict=True)))
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(agrees(v, actual[k]) for k, v in expected.items()))
    return bool(expected == actual) and type(expected) is type(actual)


def assert_same(theirs: Any, ours: Any, messages: bool = False, where: str = "result") -> None:
    """Assert storied's outcome ``ours`` is genro's ``theirs``, recursively through tuples,
    lists and dicts: equal values of the same type; for a :class:`Raised`, genro's builtin
    classes among storied's and (with ``messages``) genro's message part of storied's."""
    if isinstance(theirs, Raised):
        assert isinstance(ours, Raised), f"{where}: genro raised {theirs}, storied gave {ours!r}"
        assert theirs.kinds <= ours.kinds, f"{where}: genro {theirs}, storied {ours}"
        if messages:  # storied may add detail around genro's words
            assert theirs.message in ours.message, f"{where}: genro {theirs}, storied {ours}"
        return
    assert not isinstance(ours, Raised), f"{where}: genro gave {theirs!r}, storied raised {ours}"
    if isinstance(theirs, (list, tuple)) and type(ours) is type(theirs) and len(ours) == len(
        theirs
    ):
        for index, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            assert_same(a, b, messages, f"{where}[{index}]")
        return
    if isinstance(theirs, dict) and isinstance(ours, dict) and theirs.keys() == ours.keys():
        for key in theirs:
            assert_same(theirs[key], ours[key], messages, f"{where}[{key!r}]")
        return
    assert ours == theirs, f"{where}: genro {theirs!r}, storied {ours!r}"
    assert type(ours) is type(theirs), f"{where}: genro {type(theirs)}, storied {type(ours)}"


def scrub(value: Any, root: Path) -> Any:
    """``value`` with ``root`` (a side's own directory) replaced by ``<root>`` in messages."""
    if isinstance(value, Raised):
        return Raised(value.kinds, value.message.replace(str(root), "<root>"))
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, root) for v in value)
    return value


def xfail_unless_fixed(theirs: Any, ours: Any, messages: bool, why: str) -> None:
    """xfail with ``why`` while storied still differs; fail once it agrees (a strict xfail
    that names the open difference)."""
    try:
        assert_same(theirs, ours, messages)
    except AssertionError:
        pytest.xfail(why)
    pytest.fail(f"storied now agrees with genro; drop the open entry: {why}")


def for_mount(value: Any, mount: str) -> Any:
    """``value`` with ``{m}`` in its strings replaced by ``mount``."""
    if isinstance(value, str):
        return value.replace("{m}", mount)
    if isinstance(value, Raised):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(for_mount(v, mount) for v in value)
    if isinstance(value, dict):
        return {k: for_mount(v, mount) for k, v in value.items()}
    return value
