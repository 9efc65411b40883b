"""storied:// through fsspec: its shipped abstract test suite on writable mounts, pandas-style
URLs with storage_options, version-pinned reads, and registration under the protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests

from storied import StorageManager
from storied.errors import ReadOnlyVersionError
from storied.fsspec import StoriedFileSystem


class _Fixtures(AbstractFixtures):  # type: ignore[misc]
    mount: dict[str, Any] = {}

    @pytest.fixture
    def fs(self, tmp_path: Path) -> Iterator[StoriedFileSystem]:
        config = dict(self.mount)
        if config.get("type") == "local":
            (tmp_path / "base").mkdir()
            config["base_path"] = str(tmp_path / "base")
        storage = StorageManager()
        storage.configure([{"name": "m", **config}])
        yield StoriedFileSystem(storage=storage)

    @pytest.fixture
    def fs_path(self) -> str:
        return "m/work"

    @pytest.fixture
    def fs_join(self) -> Any:
        return lambda *parts: "/".join([p.rstrip("/") for p in parts[:-1]] + [parts[-1]])


class _Suite(_Fixtures, AbstractCopyTests, AbstractGetTests, AbstractPutTests,  # type: ignore[misc]
             AbstractOpenTests, AbstractPipeTests):
    pass


class TestLocal(_Suite):
    mount = {"type": "local"}


class TestLocalVersioned(_Suite):
    mount = {"type": "local", "versioning": True}


class TestMemory(_Suite):
    mount = {"type": "memory"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "storied.yaml"
    cfg.write_text(json.dumps([{"name": "docs", "type": "local",
                                "base_path": str(tmp_path / "data"), "versioning": True}]))
    storage = StorageManager()
    storage.configure(str(cfg))
    node = storage.node("docs:reports/q3.csv")
    node.write_text("a,b\n1,2\n")
    node.write_text("a,b\n3,4\n")
    return cfg


def test_urls_with_storage_options_and_versions(project: Path) -> None:
    opts = {"config": str(project)}
    with fsspec.open("storied://docs/reports/q3.csv", "rt", **opts) as f:
        assert f.read() == "a,b\n3,4\n"
    with fsspec.open("storied://docs/reports/q3.csv?version=-2", "rt", **opts) as f:
        assert f.read() == "a,b\n1,2\n"
    fs = fsspec.filesystem("storied", config=str(project))
    assert isinstance(fs, StoriedFileSystem)
    assert fs.ls("", detail=False) == ["docs"]
    assert fs.ls("docs/reports", detail=False) == ["docs/reports/q3.csv"]
    assert fs.cat_file("docs/reports/q3.csv", start=-4) == b"3,4\n"
    assert fs.info("docs/reports/q3.csv?version=0")["size"] == 8
    with fsspec.open("storied://docs/out.txt", "wt", **opts) as f:
        f.write("written through fsspec")
    assert fs.cat_file("docs/out.txt") == b"written through fsspec"


def test_filesystem_pinned_to_a_version_refuses_writes(project: Path) -> None:
    fs = StoriedFileSystem(config=str(project), version=0)
    assert fs.cat_file("docs/reports/q3.csv") == b"a,b\n1,2\n"
    with pytest.raises(ReadOnlyVersionError):
        fs.pipe_file("docs/reports/q3.csv", b"nope")
    from datetime import UTC, datetime

    past = StoriedFileSystem(config=str(project), as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(FileNotFoundError):
        past.cat_file("docs/reports/q3.csv")


def test_pandas_reads_and_writes_through_storied(project: Path) -> None:
    pd = pytest.importorskip("pandas")
    opts = {"config": str(project)}
    frame = pd.read_csv("storied://docs/reports/q3.csv", storage_options=opts)
    assert frame.to_dict("list") == {"a": [3], "b": [4]}
    old = pd.read_csv("storied://docs/reports/q3.csv?version=-2", storage_options=opts)
    assert old.to_dict("list") == {"a": [1], "b": [2]}
    frame.to_csv("storied://docs/reports/q4.csv", index=False, storage_options=opts)
    fs = StoriedFileSystem(config=str(project))
    assert fs.cat_file("docs/reports/q4.csv") == b"a,b\n3,4\n"


def test_traversal_is_refused(project: Path) -> None:
    fs = StoriedFileSystem(config=str(project))
    with pytest.raises(PermissionError):
        fs.cat_file("docs/../../etc/passwd")
    with pytest.raises((PermissionError, FileNotFoundError)):
        fs.cat_file("docs/.storied/format.json")
