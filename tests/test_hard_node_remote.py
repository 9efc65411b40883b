"""Issue 8 items 1.1/1.3 on SFTP and WebDAV (real servers on 127.0.0.1): a recursive delete and a
move delete only what the walk shows; hidden temp names and a nested .storied survive."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.testing import servers


@pytest.fixture(scope="module", params=["sftp", "webdav"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    kind = str(request.param)
    root = tmp_path_factory.mktemp(kind)
    handle = servers.start_sftp(root) if kind == "sftp" else servers.start_webdav(root)
    yield kind, root, handle.config
    handle.stop()


@pytest.fixture
def sm(server: tuple[str, Path, dict[str, Any]]) -> Iterator[tuple[StorageManager, Path]]:
    kind, root, config = server
    sub = f"t-{uuid.uuid4().hex[:10]}"
    (root / sub).mkdir()
    storage = StorageManager()
    storage.configure([{"name": "r", "type": kind, **config, "base_path": sub,
                        "versioning": True},
                       {"name": "mem", "type": "memory"}])
    yield storage, root / sub
    storage.close()


def test_recursive_delete_and_move_keep_hidden_names(sm: tuple[StorageManager, Path]) -> None:
    storage, root = sm
    for path in ("d/a.txt", "d/e/b.txt", "m/a.txt"):
        storage.node("r:" + path).write_text(path)
    (root / "d" / "e" / "x.storied-tmp-7").write_bytes(b"hidden")
    (root / "d" / ".storied").mkdir()
    (root / "d" / ".storied" / "refs.json").write_bytes(b"{}")
    (root / "m" / "y.storied-tmp-8").write_bytes(b"hidden too")
    assert storage.node("r:d").delete(recursive=True) is True
    assert not storage.node("r:d/a.txt").exists() and not storage.node("r:d/e/b.txt").exists()
    assert (root / "d" / "e" / "x.storied-tmp-7").read_bytes() == b"hidden"
    assert (root / "d" / ".storied" / "refs.json").read_bytes() == b"{}"
    storage.node("r:m").move_to("mem:m")
    assert storage.node("mem:m/a.txt").read_text() == "m/a.txt"
    assert (root / "m" / "y.storied-tmp-8").read_bytes() == b"hidden too"
    assert storage.node("r:m/a.txt").version_count == 1
    storage.node("r:").delete(recursive=True)
    assert (root / ".storied").is_dir()
    assert storage.node("r:d/a.txt").version_count == 1
