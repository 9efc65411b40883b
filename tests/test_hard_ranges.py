"""Byte ranges every backend refuses the same way (issue 8, review R3): a negative start is an
InvalidArgumentError before any read, never a slice from the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import InvalidArgumentError


@pytest.fixture(params=["memory", "local"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> StorageManager:
    manager = StorageManager()
    if request.param == "memory":
        manager.configure([{"name": "m", "type": "memory"}])
    else:
        manager.configure([{"name": "m", "type": "local", "base_path": str(tmp_path)}])
    manager.node("m:f.bin").write_bytes(b"0123456789")
    return manager


@pytest.mark.parametrize("start", [-3, 1.5, True, "2"])
def test_bad_range_start_is_refused(sm: StorageManager, start: object) -> None:
    backend = sm.get_backend("m")
    with pytest.raises(InvalidArgumentError):
        backend.open_read("f.bin", start)  # type: ignore[arg-type]


def test_good_range_reads_its_bytes(sm: StorageManager) -> None:
    with sm.get_backend("m").open_read("f.bin", 7) as stream:
        assert stream.read() == b"789"
    with sm.get_backend("m").open_read("f.bin", 2, 4) as stream:
        assert stream.read() == b"23"
