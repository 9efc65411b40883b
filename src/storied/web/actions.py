"""The POST actions of the web browser: restore, tag, untag, annotate, snapshots.

Each runs only after the CSRF check (:mod:`storied.web.app`), refuses when the browser is
read-only or the mount does not write (``StoragePermissionError``: a 403 page), calls one
public API method and redirects (303) to the page it came from with a one-time message.
A restore writes the old content as a new version (``node.rollback``): nothing is rewritten
or deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from storied import errors, paths
from storied.web.app import redirect, url
from storied.web.pages import node_of, version_arg

if TYPE_CHECKING:
    from storied.core.node import StorageNode
    from storied.web.app import Web

__all__ = ["annotate", "restore", "snapshot_create", "snapshot_restore", "tag", "untag"]

MAX_FIELD = 10_000


def field(form: Any, name: str, required: bool = True) -> str:
    """A text field of the form.

    Raises:
        InvalidArgumentError: Missing (when ``required``), not text, or over 10,000 chars.
    """
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise errors.InvalidArgumentError(f"missing form field {name!r}")
        return ""
    if not isinstance(value, str):
        raise errors.InvalidArgumentError(f"form field {name!r} must be text")
    if len(value) > MAX_FIELD:
        raise errors.InvalidArgumentError(f"form field {name!r} is too long")
    return value


def _target(web: Web, form: Any) -> StorageNode:
    node = node_of(web, field(form, "path"))
    web.need_writable(node.mount_name or "")
    return node


def _back(node: StorageNode) -> str:
    return url("/file", path=node.fullpath)


def restore(web: Web, request: Request, form: Any) -> Response:
    """Write version ``v`` of ``path`` as a new version."""
    node = _target(web, form)
    wanted = field(form, "v")
    node.rollback(to_version=version_arg(wanted))
    return redirect(_back(node), f"Restored version {wanted} as a new version")


def tag(web: Web, request: Request, form: Any) -> Response:
    node = _target(web, form)
    name = field(form, "tag").strip()
    vid = node.tag_version(version_arg(field(form, "v")), name, move=bool(form.get("move")))
    return redirect(_back(node), f"Tagged version {vid} as {name!r}")


def untag(web: Web, request: Request, form: Any) -> Response:
    node = _target(web, form)
    name = field(form, "tag")
    node.untag_version(name)
    return redirect(_back(node), f"Removed tag {name!r}")


def annotate(web: Web, request: Request, form: Any) -> Response:
    """Merge ``key = value`` (a string) into version ``v``'s metadata."""
    node = _target(web, form)
    key = field(form, "key").strip()
    if not key:
        raise errors.InvalidArgumentError("the annotation needs a key")
    node.annotate_version(version_arg(field(form, "v")), {key: field(form, "value", False)})
    return redirect(_back(node), f"Annotated version {field(form, 'v')}: {key}")


def snapshot_create(web: Web, request: Request, form: Any) -> Response:
    prefix = field(form, "prefix").strip()
    if ":" not in prefix:
        prefix += ":"
    mount, _sub = paths.split_fullpath(prefix)
    web.need_writable(mount)
    name = field(form, "tag").strip()
    made = web.storage.create_snapshot(prefix, name)
    return redirect(url("/snapshot", tag=f"{mount}:{name}"),
                    f"Snapshot {name!r} created: {len(made['files'])} file(s)")


def snapshot_restore(web: Web, request: Request, form: Any) -> Response:
    """Restore a snapshot (the plan was shown on the snapshot's diff page first)."""
    name = field(form, "tag")
    snap = web.storage.get_snapshot(name)
    mount, _sub = paths.split_fullpath(snap["prefix"])
    web.need_writable(mount)
    report = web.storage.restore_snapshot(name, delete_new=form.get("delete_new") == "1")
    return redirect(
        url("/snapshot/diff", tag=name),
        f"Snapshot {name!r} restored: {len(report['restored'])} restored, "
        f"{len(report['unchanged'])} unchanged, {len(report['deleted'])} deleted",
    )
