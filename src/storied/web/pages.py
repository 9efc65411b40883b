"""The GET pages of the web browser. Each is ``(web, request, form) -> Response``.

Paths come from the ``path`` query parameter as ``'mount:folder/file'`` and go to
``storage.node()`` unchanged: the API normalises and confines them (``..`` in any spelling,
``.storied``, control characters are refused there and shown as an error page). Costs: the
folder page is one listing of the folder; version counts for the visible rows come from
``/counts`` (one listing plus one history read per visible file), fetched by the page's
script; the file page is one history read (``node.versions``); a version view reads at most
:data:`PREVIEW_BYTES` of the content. Snapshot and journal pages: :mod:`storied.web.mount_pages`.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_from_bytes

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from storied import errors, paths
from storied.diff.text import decode_text
from storied.web import render
from storied.web.app import redirect, url

if TYPE_CHECKING:
    from storied.core.node import StorageNode
    from storied.web.app import Web

__all__ = [
    "counts", "diff", "diff_image", "file_page", "folder", "image", "mounts", "need", "node_of",
    "param", "raw", "version_arg", "view",
]

FOLDER_PAGE = 200
"""Rows of a folder page."""
HISTORY_PAGE = 200
"""Versions in one page of a file's history table (the timeline shows them all)."""
PREVIEW_BYTES = 2 * 1024 * 1024
"""Most bytes of a version read to show it (the download has everything)."""
PREVIEW_LINES = 20_000
HEX_BYTES = 4096
IMAGE_BYTES = 64 * 1024 * 1024
DIFF_BYTES = 16 * 1024 * 1024
"""Largest version diffed on a page (text and semantic views read both versions whole)."""
CHUNK = 1024 * 1024


# ---------------------------------------------------------------- parameters
def param(request: Request, name: str, default: str | None = None) -> str | None:
    """A query parameter (the last one when repeated), UTF-8 with bytes that are not decoded
    as lone surrogates (how Python names a non-UTF-8 file), as :func:`~storied.web.app.url`
    encodes them."""
    parsed = request.scope.get("storied.query")
    if parsed is None:
        raw = quote_from_bytes(request.scope.get("query_string", b""), safe="&=+%;/:,?@!$'()*")
        parsed = parse_qsl(raw, keep_blank_values=True, errors="surrogateescape")
        request.scope["storied.query"] = parsed
    values = [v for k, v in parsed if k == name]
    return values[-1] if values else default


def need(request: Request, name: str) -> str:
    """A required query parameter.

    Raises:
        InvalidArgumentError: It is missing or empty.
    """
    value = param(request, name)
    if not value:
        raise errors.InvalidArgumentError(f"missing parameter {name!r}")
    return value


def version_arg(text: str) -> int | str:
    """An integer is an index (``-1`` latest, ``0`` oldest); anything else an id or a tag."""
    try:
        return int(text)
    except ValueError:
        return text


def page_number(request: Request) -> int:
    try:
        return max(int(param(request, "page", "1") or 1), 1)
    except ValueError:
        raise errors.InvalidArgumentError("page must be a number") from None


def node_of(web: Web, text: str) -> StorageNode:
    """``storage.node(text)``; the API confines the path (errors become pages)."""
    if ":" not in text:
        text += ":"
    return web.storage.node(text)


def pick(versions: list[dict[str, Any]], wanted: int | str,
         where: str) -> tuple[int, dict[str, Any]]:
    """``(index, version dict)`` of ``wanted`` (index, version id or tag) in ``versions``.

    Raises:
        VersionNotFoundError: No such version.
    """
    if isinstance(wanted, int):
        if -len(versions) <= wanted < len(versions):
            index = wanted % len(versions)
            return index, versions[index]
    else:
        for index, version in enumerate(versions):
            if version["version_id"] == wanted or wanted in (version.get("tags") or []):
                return index, version
    raise errors.VersionNotFoundError(f"{where}: no version {wanted!r}")


def crumbs(mount: str, path: str) -> list[tuple[str, str]]:
    """``(label, fullpath)`` of the mount root and every folder down to ``path``."""
    found = [(mount, f"{mount}:")]
    parts = [p for p in path.split("/") if p]
    for n in range(len(parts)):
        found.append((parts[n], f"{mount}:{'/'.join(parts[: n + 1])}"))
    return found


# ---------------------------------------------------------------- mounts
def _mount_caps(web: Web, name: str, backend: Any) -> list[str]:
    """What the mount can do, version flags included where it keeps history."""
    try:
        return list(web.storage.node(f"{name}:").capabilities.enabled())
    except errors.StorageError:
        return list(backend.capabilities.enabled())


def mounts(web: Web, request: Request, form: Any) -> Response:
    rows = []
    for name in web.storage.get_mount_names():
        backend = web.storage.get_backend(name)
        try:
            history = web.storage.history(name)
            engine = history.name if history is not None else "none"
        except errors.StorageError as exc:
            engine = f"unavailable ({exc})"
        rows.append({
            "name": name,
            "type": backend.protocol,
            "engine": engine,
            "caps": _mount_caps(web, name, backend),
            "writable": web.writable(name),
        })
    return web.page(request, "mounts.html", mounts=rows)


# ---------------------------------------------------------------- folders
def _listing(web: Web, node: StorageNode) -> list[Any]:
    """The folder's entries from one listing, folders first, then by name."""
    backend = web.storage.get_backend(node.mount_name or "")
    entries = list(backend.list(node.path))
    return sorted(entries, key=lambda e: (not e.is_dir, e.name))


def _visible(entries: list[Any], page: int) -> list[Any]:
    return entries[(page - 1) * FOLDER_PAGE : page * FOLDER_PAGE]


def _file_counts(web: Web, node: StorageNode, entries: list[Any]) -> dict[str, dict[str, Any]]:
    """``{name: {'count', 'tags'}}`` of the files among ``entries`` (one history read each)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.is_dir:
            continue
        versions = node.child(entry.name).versions
        tags = sorted({t for v in versions for t in (v.get("tags") or [])})
        found[entry.name] = {"count": len(versions), "tags": tags}
    return found


def folder(web: Web, request: Request, form: Any) -> Response:
    text = need(request, "path")
    node = node_of(web, text)
    mount = node.mount_name or ""
    try:
        entries = _listing(web, node)
    except (errors.NotADirectoryStorageError, errors.StorageNotFoundError):
        if not node.path:
            raise
        return redirect(url("/file", path=node.fullpath))
    page = page_number(request)
    visible = _visible(entries, page)
    versioned = web.storage.history(mount) is not None
    inline = versioned and param(request, "counts") == "1"
    counted = _file_counts(web, node, visible) if inline else {}
    rows = [{
        "name": e.name,
        "fullpath": f"{mount}:{paths.join(node.path, e.name)}",
        "is_dir": e.is_dir,
        "size": e.size,
        "mtime": e.mtime,
        "counts": counted.get(e.name),
    } for e in visible]
    pages = max((len(entries) + FOLDER_PAGE - 1) // FOLDER_PAGE, 1)
    return web.page(
        request, "folder.html", node=node, crumbs=crumbs(mount, node.path), rows=rows,
        page=page, pages=pages, total=len(entries), versioned=versioned, inline=inline,
        writable=web.writable(mount) and versioned,
    )


def counts(web: Web, request: Request, form: Any) -> Response:
    """JSON ``{name: {'count', 'tags'}}`` for the files of one folder page."""
    node = node_of(web, need(request, "path"))
    if web.storage.history(node.mount_name or "") is None:
        return _json({})
    visible = _visible(_listing(web, node), page_number(request))
    return _json(_file_counts(web, node, visible))


def _json(data: Any) -> Response:
    return Response(json.dumps(data), media_type="application/json")


# ---------------------------------------------------------------- file history
def file_page(web: Web, request: Request, form: Any) -> Response:
    node = node_of(web, need(request, "path"))
    mount = node.mount_name or ""
    versions = node.versions
    current = None
    if not versions:
        info = node.info()  # StorageNotFoundError: a 404 page
        if info.is_dir:
            return redirect(url("/browse", path=node.fullpath))
        current = info
    page = page_number(request)
    count = len(versions)
    newest = count - 1 - (page - 1) * HISTORY_PAGE
    indexes = range(newest, max(newest - HISTORY_PAGE, -1), -1)
    rows = [(i, versions[i]) for i in indexes]
    return web.page(
        request, "file.html", node=node, crumbs=crumbs(mount, node.dirname), rows=rows,
        count=count, page=page, pages=max((count + HISTORY_PAGE - 1) // HISTORY_PAGE, 1),
        timeline=render.timeline_svg(versions), current=current,
        writable=web.writable(mount) and count > 0, modes=diff_modes(node),
        default_a=str(versions[-2]["version_id"]) if count > 1 else "",
        default_b=str(versions[-1]["version_id"]) if count else "",
    )


# ---------------------------------------------------------------- contents
def _open(web: Web, request: Request) -> tuple[StorageNode, dict[str, Any] | None, Any]:
    """The node, the version dict (None: the current file of a mount without history), and a
    binary stream of that content."""
    node = node_of(web, need(request, "path"))
    wanted = param(request, "v")
    if wanted is None:
        return node, None, node.open("rb")
    index, version = pick(node.versions, version_arg(wanted), node.fullpath)
    version = {**version, "index": index}
    return node, version, node.open("rb", version=version["version_id"])


def view(web: Web, request: Request, form: Any) -> Response:
    node, version, stream = _open(web, request)
    with stream:
        head = stream.read(PREVIEW_BYTES + 1)
    truncated = len(head) > PREVIEW_BYTES
    head = head[:PREVIEW_BYTES]
    context: dict[str, Any] = {"node": node, "version": version, "truncated": truncated,
                               "crumbs": crumbs(node.mount_name or "", node.dirname)}
    v = version["version_id"] if version else None
    context["raw_url"] = url("/raw", path=node.fullpath, v=v)
    kind = render.image_type(head[:16])
    if kind is not None:
        context.update(kind="image", image_url=url("/image", path=node.fullpath, v=v))
        return web.page(request, "view.html", **context)
    try:
        sample = head
        if truncated and b"\n" in head:
            sample = head[: head.rindex(b"\n") + 1]
        text = decode_text(sample, node.fullpath)
    except errors.StorageError:
        context.update(kind="binary", hex=render.hex_rows(head[:HEX_BYTES]),
                       shown=min(len(head), HEX_BYTES))
        return web.page(request, "view.html", **context)
    looks_json = node.suffix.lower() in (".json", ".geojson", ".ipynb") or (
        text.lstrip()[:1] in ("{", "["))
    pretty = render.pretty_json(text) if looks_json and not truncated else None
    lines = (pretty if pretty is not None else text).splitlines()
    context.update(kind="json" if pretty is not None else "text", lines=lines[:PREVIEW_LINES],
                   more_lines=max(len(lines) - PREVIEW_LINES, 0))
    return web.page(request, "view.html", **context)


def _chunks(stream: Any) -> Any:
    with stream:
        while True:
            block = stream.read(CHUNK)
            if not block:
                return
            yield block


def raw(web: Web, request: Request, form: Any) -> Response:
    """The content as a download (never rendered by the browser)."""
    from storied.core.web import content_disposition

    node, version, stream = _open(web, request)
    name = node.basename or "download"
    if version is not None:
        name = f"{node.stem or 'download'}.v{version['index']}{node.suffix}"
    return StreamingResponse(
        _chunks(stream), media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition(name)},
    )


def _image_response(data: bytes, kind: str) -> Response:
    return Response(data, media_type=kind, headers={
        "Content-Disposition": "inline",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


def image(web: Web, request: Request, form: Any) -> Response:
    """A raster image version (PNG, JPEG, GIF, BMP, WebP; never SVG) for ``<img>``."""
    node, _version, stream = _open(web, request)
    with stream:
        data = stream.read(IMAGE_BYTES + 1)
    kind = render.image_type(data[:16])
    if kind is None or len(data) > IMAGE_BYTES:
        raise errors.InvalidContentError(f"{node.fullpath}: not a raster image shown inline")
    return _image_response(data, kind)


# ---------------------------------------------------------------- diffs
def diff_modes(node: StorageNode) -> list[str]:
    """The diff views that suit the file (by name), the best first."""
    suffix = node.suffix.lower()
    if suffix in (".json", ".geojson"):
        return ["json", "text"]
    if suffix in (".csv", ".tsv"):
        return ["csv", "text"]
    if suffix in (".xml", ".svg", ".xhtml"):
        return ["xml", "text"]
    if node.mimetype.startswith("image/") and suffix != ".svg":
        return ["image"]
    return ["text"]


def _diff_table(page: str) -> str:
    """The body of the side-by-side page ``diff_versions_text(format='html')`` renders (made of
    escaped text by the renderer), without its own heading; our page has its own."""
    start = page.find("</h1>")
    end = page.rfind("</body>")
    return page[start + len("</h1>") : end] if start >= 0 and end > start else ""


def diff(web: Web, request: Request, form: Any) -> Response:
    node = node_of(web, need(request, "path"))
    a = param(request, "a") or "-2"
    b = param(request, "b") or "-1"
    versions = node.versions
    ia, va = pick(versions, version_arg(a), node.fullpath)
    ib, vb = pick(versions, version_arg(b), node.fullpath)
    if ia > ib:
        (ia, va), (ib, vb) = (ib, vb), (ia, va)
    modes = diff_modes(node)
    if "text" not in modes and modes != ["image"]:
        modes.append("text")
    mode = param(request, "mode") or modes[0]
    if mode not in ("text", "json", "csv", "xml", "image"):
        raise errors.InvalidArgumentError(f"unknown diff view {mode!r}")
    old, new = va["version_id"], vb["version_id"]
    too_big = [f"#{i} ({render.human_size(v['size'])})" for i, v in ((ia, va), (ib, vb))
               if (v.get("size") or 0) > DIFF_BYTES]
    if too_big and mode != "image":
        raise errors.InvalidArgumentError(
            f"{node.fullpath}: version {' and '.join(too_big)} is over "
            f"{render.human_size(DIFF_BYTES)}, too large to diff in the page; download the "
            "versions to compare them"
        )
    context: dict[str, Any] = {
        "node": node, "crumbs": crumbs(node.mount_name or "", node.dirname), "mode": mode,
        "modes": modes, "old": {**va, "index": ia}, "new": {**vb, "index": ib},
        "key": param(request, "key") or "", "writable": web.writable(node.mount_name or ""),
    }
    if mode == "text":
        context["table"] = _diff_table(node.diff_versions_text(old, new, format="html"))
    elif mode == "json":
        context["changes"] = node.diff_json_versions(old, new)
    elif mode == "xml":
        context["edits"] = node.diff_xml_versions(old, new)
    elif mode == "csv":
        keys = [k.strip() for k in context["key"].split(",") if k.strip()]
        context["csv"] = node.diff_csv_versions(old, new, key=keys or None)
    else:
        context["image"] = node.diff_image_versions(old, new).summary()
        context["image_url"] = url("/diffimage", path=node.fullpath, a=old, b=new)
    context["dumps"] = _dumps
    return web.page(request, "diff.html", **context)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def diff_image(web: Web, request: Request, form: Any) -> Response:
    """The highlighted image of an image diff, as PNG."""
    node = node_of(web, need(request, "path"))
    result = node.diff_image_versions(version_arg(need(request, "a")),
                                      version_arg(need(request, "b")))
    out = io.BytesIO()
    result.image.save(out, format="PNG")
    return _image_response(out.getvalue(), "image/png")
