"""The pages about a whole mount: snapshots (list, contents, against now) and the event journal.

Each is ``(web, request, form) -> Response`` like :mod:`storied.web.pages`. A snapshot's page
"against now" is the dry-run plan of its restore, so what it shows is exactly what the restore
button does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from storied import paths
from storied.web.pages import need, node_of, page_number, param

if TYPE_CHECKING:
    from storied.web.app import Web

__all__ = ["events", "snapshot", "snapshot_diff", "snapshot_new", "snapshots"]

EVENTS_PAGE = 200
"""Journal entries on one page."""
SNAPSHOT_PAGE = 500
"""Files of a snapshot listed on one page."""
PLAN_FILES = 1000
"""Files a snapshot's creation plan shows with their current version (the rest are counted)."""


def snapshots(web: Web, request: Request, form: Any) -> Response:
    rows = web.storage.list_snapshots()
    writable = [n for n in web.storage.get_mount_names() if web.writable(n)]
    return web.page(request, "snapshots.html", rows=rows, can_create=bool(writable),
                    prefix=param(request, "prefix") or "")


def _snapshot_files(web: Web, snap: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The snapshot's mount and ``{mount path: version id}``."""
    mount, _sub = paths.split_fullpath(snap["prefix"])
    history = web.storage.history(mount)
    base = history.prefix if history is not None else ""
    files = {}
    for path, vid in snap["files"].items():
        files[paths.relative_to(path, base) if paths.is_under(path, base) else path] = vid
    return mount, files


def snapshot(web: Web, request: Request, form: Any) -> Response:
    tag = need(request, "tag")
    snap = web.storage.get_snapshot(tag)
    mount, files = _snapshot_files(web, snap)
    page = page_number(request)
    listed = sorted(files.items())
    shown = listed[(page - 1) * SNAPSHOT_PAGE : page * SNAPSHOT_PAGE]
    pages = max((len(listed) + SNAPSHOT_PAGE - 1) // SNAPSHOT_PAGE, 1)
    return web.page(request, "snapshot.html", tag=tag, snap=snap, mount=mount, files=shown,
                    count=len(listed), page=page, pages=pages, writable=web.writable(mount))


def snapshot_diff(web: Web, request: Request, form: Any) -> Response:
    """The snapshot against now: the dry-run plan of its restore (shown before restoring)."""
    tag = need(request, "tag")
    snap = web.storage.get_snapshot(tag)
    mount, files = _snapshot_files(web, snap)
    plan = web.storage.restore_snapshot(tag, dry_run=True)
    changed = []
    for path in plan["restored"]:
        node = web.storage.node(mount, path)
        changed.append({"path": path, "fullpath": node.fullpath, "vid": files.get(path),
                        "deleted": not node.exists()})
    return web.page(request, "snapshot_diff.html", tag=tag, snap=snap, mount=mount,
                    changed=changed, unchanged=plan["unchanged"], new=plan["new"],
                    writable=web.writable(mount))


def _walk(web: Web, mount: str, sub: str, limit: int) -> tuple[list[str], int]:
    """The first ``limit`` file paths under ``sub`` (one listing per folder) and how many
    there are in all."""
    backend = web.storage.get_backend(mount)
    found: list[str] = []
    total = 0
    pending = [sub]
    while pending:
        folder = pending.pop()
        for entry in sorted(backend.list(folder), key=lambda e: e.name, reverse=True):
            path = paths.join(folder, entry.name) if folder else entry.name
            if entry.is_dir:
                pending.append(path)
                continue
            total += 1
            if len(found) < limit:
                found.append(path)
    return sorted(found), total


def snapshot_new(web: Web, request: Request, form: Any) -> Response:
    """The plan of a snapshot's creation: the files under the folder and the version of each
    that it would record (their current one); the form below creates it."""
    node = node_of(web, need(request, "prefix"))
    mount = node.mount_name or ""
    found, total = _walk(web, mount, node.path, PLAN_FILES)
    rows = []
    for path in found:
        current = [v for v in web.storage.node(mount, path).versions if v["is_latest"]]
        rows.append((path, current[0]["version_id"] if current else None))
    return web.page(request, "snapshot_new.html", node=node, mount=mount, rows=rows,
                    total=total, tag=param(request, "tag") or "",
                    writable=web.writable(mount))


# ---------------------------------------------------------------- journal
def events(web: Web, request: Request, form: Any) -> Response:
    """The journal of a versioned mount (or of a folder of it), oldest first, 200 a page; the
    next page starts after the last event's cursor."""
    node = node_of(web, need(request, "path"))
    since = param(request, "since")
    found = list(web.storage.events(f"{node.mount_name}:{node.path}", since=since,
                                    limit=EVENTS_PAGE + 1))
    more = len(found) > EVENTS_PAGE
    shown = found[:EVENTS_PAGE]
    rows = [{
        "event": e,
        "fullpath": f"{e.mount}:{e.path}" if e.path else None,
        "summary": _summary(e.info),
    } for e in shown]
    return web.page(request, "events.html", node=node, rows=rows, since=since,
                    next_cursor=shown[-1].cursor if more and shown else None)


def _summary(info: dict[str, Any]) -> str:
    """A short ``key=value`` line of an event's info (escaped by the template)."""
    parts = []
    for key, value in sorted(info.items()):
        if key in ("version_id", "last_modified", "etag", "sha256"):
            continue
        parts.append(f"{key}={value}")
    text = ", ".join(parts)
    return text if len(text) <= 300 else text[:297] + "..."
