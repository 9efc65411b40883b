"""The version-management conformance suite: tags, annotations, retention, bulk, snapshots.

Subclass :class:`ManagementConformance` and provide ``mount_config``: the config dict of a
fresh, empty mount named ``v`` that keeps history. The suite builds managers from it (two
managers on the same config must see the same storage).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager, StoragePermissionError
from storied.errors import StorageAlreadyExistsError, StorageNotFoundError

__all__ = ["ManagementConformance"]


class ManagementConformance:
    """Behaviour every history engine must show for version management."""

    @pytest.fixture
    def sm(self, mount_config: dict[str, Any]) -> StorageManager:
        return self._manager(mount_config)

    def _manager(self, mount_config: dict[str, Any]) -> StorageManager:
        storage = StorageManager()
        storage.configure([dict(mount_config),
                           {"name": "vro", "path": "v:", "permissions": "readonly"}])
        return storage

    def _history(self, sm: StorageManager, path: str, count: int) -> Any:
        node = sm.node(path)
        for i in range(count):
            node.write_text(f"content {i}")
        return node

    # ------------------------------------------------------------------ tags
    def test_tags_point_at_versions(self, sm: StorageManager,
                                    mount_config: dict[str, Any]) -> None:
        node = self._history(sm, "v:t.txt", 6)
        vid = node.tag_version(-1, "release-v1.0")
        node.tag_version(-5, "pre-migration-backup")
        tags = node.get_version_tags()
        assert tags == {"release-v1.0": vid, "pre-migration-backup": node.versions[1]["version_id"]}
        assert node.open(version="release-v1.0").read() == "content 5"
        assert sm.node("v:t.txt", version="pre-migration-backup").read_text() == "content 1"
        assert node.versions[-1]["tags"] == ["release-v1.0"]
        again = self._manager(mount_config).node("v:t.txt")
        assert again.get_version_tags() == tags  # persisted in the storage

    def test_tag_names_are_unique_per_file(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:u.txt", 3)
        node.tag_version(0, "stable")
        with pytest.raises(StorageAlreadyExistsError):
            node.tag_version(-1, "stable")
        node.tag_version(-1, "stable", move=True)
        assert node.open(version="stable").read() == "content 2"
        other = self._history(sm, "v:other.txt", 1)
        other.tag_version(-1, "stable")  # same name, another file: fine
        node.untag_version("stable")
        assert node.get_version_tags() == {}
        with pytest.raises(StorageNotFoundError):
            node.untag_version("stable")

    def test_rollback_to_tag(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:rb.txt", 3)
        node.tag_version(0, "good")
        node.rollback(tag="good")
        assert node.read_text() == "content 0" and node.version_count == 4

    def test_tagged_versions_are_protected(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:p.txt", 4)
        node.write_text("content 3")  # a duplicate of the previous version
        node.tag_version(-2, "keep-me")
        with pytest.raises(StoragePermissionError):
            node.delete_version("keep-me")
        assert node.compact_versions() == 0
        removed = node.cleanup_versions(keep_last=1)
        assert {v["version_id"] for v in removed}.isdisjoint(node.get_version_tags().values())
        assert node.open(version="keep-me").read() == "content 3"

    def test_current_version_is_protected(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:cur.txt", 3)
        node.write_text("content 2")  # a duplicate of the current version's predecessor
        with pytest.raises(StoragePermissionError, match="current version"):
            node.delete_version(-1)
        assert node.compact_versions(dry_run=True) == 1 == node.compact_versions()
        assert node.cleanup_versions(keep_last=0) != [] and node.version_count == 1
        assert node.read_text() == "content 2" and node.versions[-1]["is_latest"]
        node.delete()  # no current version any more: the last one may go too
        node.delete_version(-1)
        assert node.versions == [] and not node.exists()

    def test_compact_dry_run_counts_protection(self, sm: StorageManager) -> None:
        node = sm.node("v:dup.txt")
        for _ in range(4):
            node.write_text("same")
        node.tag_version(1, "kept")
        sm.create_snapshot("v:", "snap")
        node.write_text("other")
        assert node.compact_versions(dry_run=True) == 1 == node.compact_versions()
        assert sm.bulk_compact_versions("v:", dry_run=True) == {}
        assert sm.node("v:dup.txt", version="kept").read_text() == "same"

    def test_delete_keeps_tags(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:d.txt", 2)
        node.tag_version(0, "first")
        node.delete()
        assert node.get_version_tags() == {"first": node.versions[0]["version_id"]}
        assert node.open(version="first").read() == "content 0"

    def test_readonly_mount_refuses_tagging(self, sm: StorageManager) -> None:
        self._history(sm, "v:ro.txt", 1)
        node = sm.node("vro:ro.txt")
        for attempt in (lambda: node.tag_version(-1, "x"),
                        lambda: node.annotate_version(-1, {"a": 1}),
                        lambda: node.cleanup_versions(keep_last=1)):
            with pytest.raises(StoragePermissionError):
                attempt()
        assert node.get_version_tags() == {}

    # ------------------------------------------------------------------ annotations
    def test_annotations_and_find(self, sm: StorageManager) -> None:
        node = sm.node("v:a.txt")
        node.write_bytes(b"1", metadata={"author": "ana@example.com"})
        node.write_bytes(b"2")
        node.write_bytes(b"3", metadata={"author": "bo@example.com"})
        merged = node.annotate_version(version=-1, metadata={"reason": "bug fix"})
        assert merged == {"author": "bo@example.com", "reason": "bug fix"}
        node.annotate_version(version=1, metadata={"author": "ana@example.com", "n": 2})
        found = node.find_versions(author="ana@example.com")
        assert [v["version_id"] for v in found] == [v["version_id"] for v in node.versions[:2]]
        assert node.find_versions(author="ana@example.com", n=2)[0]["metadata"]["n"] == 2
        assert len(node.find_versions(reason=lambda r: r is not None)) == 1
        assert node.find_versions(author="nobody") == []
        assert all("metadata" in v and "tags" in v for v in node.versions)
        with pytest.raises(TypeError):
            node.annotate_version(-1, {"bad": object()})

    # ------------------------------------------------------------------ retention
    def test_cleanup_rules(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:c.txt", 6)
        later = datetime.now(UTC) + timedelta(days=10)
        plan = node.cleanup_versions(keep_last=2, dry_run=True, now=later)
        assert [row["keep"] for row in plan] == [False] * 4 + [True] * 2
        assert plan[-1]["reasons"] == ["current", "last-2"] and plan[0]["reasons"] == ["remove"]
        assert node.version_count == 6  # a dry run deletes nothing
        assert all(r["keep"] for r in node.cleanup_versions(keep_days=30, dry_run=True))
        assert len(node.cleanup_versions(keep_days=5, dry_run=True, now=later)) == 6
        keep = [r["keep"] for r in node.cleanup_versions(keep_days=5, dry_run=True, now=later)]
        assert keep == [False] * 5 + [True]  # all are 10 days old at `later`; current stays
        both = node.cleanup_versions(keep_last=3, keep_days=30, dry_run=True, now=later)
        assert all(r["keep"] for r in both)  # within 30 days: everything stays
        removed = node.cleanup_versions(keep_last=2, now=later)
        assert len(removed) == 4 and node.version_count == 2
        assert [node.open(version=i).read() for i in range(2)] == ["content 4", "content 5"]
        assert sm.verify("v:").ok

    # ------------------------------------------------------------------ bulk
    def test_bulk_compact_and_cleanup(self, sm: StorageManager) -> None:
        for name in ("a", "b", "c"):
            node = sm.node(f"v:docs/{name}.txt")
            for text in ("x", "x", "y", "y", "z"):
                node.write_text(text)
        self._history(sm, "v:elsewhere.txt", 3)
        seen: list[tuple[int, int]] = []
        planned = sm.bulk_compact_versions("v:docs/", dry_run=True)
        assert planned == {f"v:docs/{n}.txt": 2 for n in "abc"}
        assert sm.bulk_compact_versions("v:docs/", progress=lambda i, n: seen.append((i, n))) \
            == planned
        assert seen[-1] == (3, 3) and sm.node("v:docs/a.txt").version_count == 3
        sm.node("v:docs/b.txt").tag_version(0, "keep")
        result = sm.bulk_cleanup_versions("v:docs/", keep_last=1, dry_run=True)
        assert sorted(result) == [f"v:docs/{n}.txt" for n in "abc"]
        assert len(result["v:docs/b.txt"]) == 1  # the tagged oldest stays
        sm.bulk_cleanup_versions("v:docs/", keep_last=1)
        assert [sm.node(f"v:docs/{n}.txt").version_count for n in "abc"] == [1, 2, 1]
        assert sm.node("v:elsewhere.txt").version_count == 3
        assert sm.verify("v:").ok

    # ------------------------------------------------------------------ snapshots
    def test_snapshot_lifecycle(self, sm: StorageManager) -> None:
        self._history(sm, "v:config/app.json", 2)
        self._history(sm, "v:config/db.json", 1)
        created = sm.create_snapshot("v:config/", tag="pre-deploy")
        assert set(created["files"]) == {"config/app.json", "config/db.json"}
        with pytest.raises(StorageAlreadyExistsError):
            sm.create_snapshot("v:config/", tag="pre-deploy")
        sm.node("v:config/app.json").write_text("broken")
        sm.node("v:config/db.json").delete()
        sm.node("v:config/new.json").write_text("added later")
        listed = sm.list_snapshots()
        assert [(s["tag"], s["file_count"]) for s in listed] == [("pre-deploy", 2)]
        assert sm.get_snapshot("pre-deploy")["prefix"] == "v:config"
        dry = sm.restore_snapshot("pre-deploy", dry_run=True)
        assert sorted(dry["restored"]) == ["config/app.json", "config/db.json"]
        assert sm.node("v:config/app.json").read_text() == "broken"
        report = sm.restore_snapshot("pre-deploy")
        assert report["new"] == ["config/new.json"] and report["deleted"] == []
        assert sm.node("v:config/app.json").read_text() == "content 1"
        assert sm.node("v:config/db.json").read_text() == "content 0"
        assert sm.node("v:config/app.json").version_count == 4  # restored as a new version
        sm.restore_snapshot("pre-deploy", delete_new=True)
        assert not sm.node("v:config/new.json").exists()
        sm.delete_snapshot("pre-deploy")
        assert sm.list_snapshots() == []
        with pytest.raises(StorageNotFoundError):
            sm.get_snapshot("pre-deploy")

    def test_snapshot_protects_versions(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:s/a.txt", 2)
        sm.create_snapshot("v:s/", tag="frozen")
        node.write_text("later")
        removed = node.cleanup_versions(keep_last=1)
        assert len(removed) == 1  # "content 0" goes; the snapshot's "content 1" stays
        assert [node.open(version=i).read() for i in range(2)] == ["content 1", "later"]
        with pytest.raises(StoragePermissionError):
            node.delete_version(0)
