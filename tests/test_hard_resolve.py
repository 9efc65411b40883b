"""One resolution rule for a version argument (index, id or tag) in every node method."""

from __future__ import annotations

import pytest

from storied import StorageManager, VersionNotFoundError


@pytest.fixture
def sm() -> StorageManager:
    manager = StorageManager()
    manager.configure([{"name": "v", "type": "memory", "versioning": True}])
    return manager


def test_diff_versions_takes_a_tag_like_every_version_argument(sm: StorageManager) -> None:
    node = sm.node("v:a.txt")
    for text in ("one", "two", "three"):
        node.write_text(text)
    node.tag_version(0, "first")
    assert node.diff_versions("first", -1) == (b"one", b"three")
    assert node.open(version="first").read() == "one"


def test_an_unknown_version_is_a_version_not_found_error(sm: StorageManager) -> None:
    node = sm.node("v:a.txt")
    node.write_text("one")
    for bad in (5, "nope"):
        with pytest.raises(VersionNotFoundError):
            node.diff_versions(bad, -1)
        with pytest.raises(VersionNotFoundError):
            node.open(version=bad)
    with pytest.raises(IndexError):  # genro-storage raised IndexError for an index
        node.open(version=9)
