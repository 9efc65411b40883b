"""Issue 8 section 2 (node part): every error a node, a copy or a virtual node raises is from
storied.errors, and also the builtin older code catches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storied import StorageError, StorageManager


@pytest.fixture
def sm() -> Iterator[StorageManager]:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    storage.node("m:a.txt").write_text("a\n")
    storage.node("m:b.bin").write_bytes(b"\x00\x01")
    yield storage


@pytest.mark.parametrize(
    ("builtin", "attempt"),
    [
        (LookupError, lambda sm: sm.iternode(sm.node("m:a.txt")).read_text(encoding="nope")),
        (LookupError, lambda sm: sm.diffnode(sm.node("m:a.txt"), sm.node("m:a.txt"))
         .read_text(encoding="nope")),
        (ValueError, lambda sm: sm.diffnode(sm.node("m:a.txt"), sm.node("m:b.bin")).read_text()),
        (ValueError, lambda sm: sm.iternode(sm.node("m:a.txt")).write_bytes(b"x")),
        (ValueError, lambda sm: sm.node("m:a.txt").copy_to("m:c.txt", skip="sometimes")),
        (ValueError, lambda sm: sm.node("m:a.txt").copy_to("m:c.txt", skip="custom")),
        (ValueError, lambda sm: sm.node("m:a.txt").read(mode="rt")),
        (ValueError, lambda sm: sm.node("m:a.txt").write("x", mode="a")),
        (ValueError, lambda sm: sm.node("m:a.txt").open("r", version=0, as_of=object())),
        (ValueError, lambda sm: sm.node().read_bytes()),
        (LookupError, lambda sm: sm.node("m:a.txt").read_text(encoding="no-such-codec")),
        (ValueError, lambda sm: sm.node("m:a.txt").open("z")),
        (ValueError, lambda sm: sm.node("m:a.txt").open("rw")),
        (ValueError, lambda sm: sm.node("m:a.txt").open("rbb")),
        (ValueError, lambda sm: sm.node("m:a.txt").open("")),
    ],
)
def test_node_errors_are_storied_errors(
    sm: StorageManager, builtin: type[Exception], attempt: Callable[[StorageManager], object]
) -> None:
    with pytest.raises(builtin) as caught:
        attempt(sm)
    assert isinstance(caught.value, StorageError), type(caught.value)


# ---------------------------------------------------------------------- genro: empty directories
@pytest.mark.parametrize("kind", ["memory", "local"])
def test_copying_a_directory_creates_its_empty_directories(kind: str, tmp_path: object) -> None:
    storage = StorageManager()
    extra = {"base_path": str(tmp_path)} if kind == "local" else {}
    storage.configure([{"name": "m", "type": kind, **extra}])
    storage.node("m:src/empty").mkdir(parents=True)
    storage.node("m:src/a/b").mkdir(parents=True)
    storage.node("m:src/f/x.txt").write_text("x")
    storage.node("m:src").copy_to("m:dst")
    for path in ("dst", "dst/empty", "dst/a", "dst/a/b", "dst/f"):
        assert storage.node("m:" + path).is_dir(), path
    assert storage.node("m:dst/f/x.txt").read_text() == "x"
    storage.node("m:src/empty").copy_to("m:dst2")
    assert storage.node("m:dst2").is_dir()
    seen: list[tuple[int, int]] = []
    storage.node("m:src").copy_to("m:dst3", include="*.txt",  # filters: every dir too (genro)
                                  progress=lambda done, total: seen.append((done, total)))
    for path in ("dst3/empty", "dst3/a/b", "dst3/f"):
        assert storage.node("m:" + path).is_dir(), path
    assert seen == [(1, 1)]  # only the file the filter let through counts
    storage.node("m:src").move_to("m:moved")
    assert storage.node("m:moved/a/b").is_dir() and not storage.node("m:src").exists()


@pytest.mark.parametrize("include", [None, "*.txt"])
def test_directories_recreated_by_a_copy_never_include_reserved_ones(
        tmp_path: Path, include: str | None) -> None:
    """A copy recreates the source's directories (filters or not, as genro-storage does) but
    never a ``.storied`` folder at any depth: copied into a versioned mount, it would be read
    as history."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub" / ".storied" / "refs").mkdir(parents=True)
    (src / "sub" / ".storied" / "refs" / "tags.json").write_text("{}")
    (src / "deep" / ".storied").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("a")
    dst.mkdir()
    storage = StorageManager()
    storage.configure([{"name": "src", "type": "local", "base_path": str(src)},
                       {"name": "v", "type": "local", "base_path": str(dst), "versioning": True}])
    storage.node("src:").copy_to(storage.node("v:in"), include=include)
    assert sorted(p.name for p in (dst / "in").iterdir()) == ["deep", "sub"]
    assert not (dst / "in" / "deep" / ".storied").exists()
    assert sorted(p.name for p in (dst / "in" / "sub").iterdir()) == ["a.txt"]
