"""``storied demo``: a self-explanatory tour on a temporary local folder. Needs no config."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from storied import StorageError, StorageManager

__all__ = ["run_demo"]


def _step(console: Console, title: str, code: str) -> None:
    console.print(f"\n[bold cyan]{title}[/bold cyan]")
    console.print(f"[dim]>>> {code}[/dim]")


def run_demo(console: Console, keep: str | None = None) -> None:
    """Run the tour, printing each call and its result. Cleans up unless ``keep`` is given."""
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="storied-demo-"))
    (root / "home").mkdir(parents=True, exist_ok=True)
    try:
        _tour(console, root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    console.print(
        Panel.fit(
            "Tour done. Next: write a storied.yaml and try "
            "`storied ls home:`, `storied log home:x.txt`, `storied verify`.",
            border_style="green",
        )
    )


def _tour(console: Console, root: Path) -> None:
    console.print(
        Panel.fit(f"storied demo: mounts and nodes on a local folder\n{root}", border_style="cyan")
    )
    storage = StorageManager()
    mounts: list[dict[str, Any]] = [
        {"name": "home", "type": "local", "base_path": str(root / "home"), "versioning": True},
        {"name": "scratch", "type": "memory"},
        {"name": "public", "path": "home:public", "permissions": "readonly"},
    ]
    _step(console, "1. Mount three storages by name", f"storage.configure({mounts})")
    storage.configure(mounts)
    console.print(f"mounts: {storage.get_mount_names()}")

    _step(
        console,
        "2. Write files through nodes (atomic: temp file + rename)",
        "storage.node('home:public/report.txt').write_text(...)",
    )
    for name, text in [
        ("report.txt", "Q3 revenue: 42\n"),
        ("notes/todo.md", "- ship storied\n"),
        ("data.csv", "id,value\n1,10\n2,20\n"),
    ]:
        storage.node("home:public", name).write_text(text)
    node = storage.node("home:public/report.txt")
    console.print(f"{node.fullpath}: {node.size()} bytes, md5 {node.md5hash()}")
    console.print(
        f"children of home:public: {[c.basename for c in storage.node('home:public').children()]}"
    )

    _step(
        console,
        "3. Copy a folder to another mount, with progress",
        "storage.node('home:public').copy_to('scratch:backup', progress=cb)",
    )
    storage.node("home:public").copy_to(
        "scratch:backup", progress=lambda i, n: console.print(f"  copied {i}/{n}")
    )
    skipped: list[str] = []
    _step(
        console,
        "4. Copy again with skip='hash': nothing changed, nothing is copied",
        "storage.node('home:public').copy_to('scratch:backup', skip='hash')",
    )
    storage.node("home:public").copy_to(
        "scratch:backup",
        skip="hash",
        on_skip=lambda n, reason: skipped.append(f"  skipped {n.basename}: {reason}"),
    )
    console.print("\n".join(skipped))

    _step(
        console,
        "5. A read-only mount refuses every write",
        "storage.node('public:report.txt').write_text('tampered')",
    )
    try:
        storage.node("public:report.txt").write_text("tampered")
    except StorageError as exc:
        console.print(f"  refused: [yellow]{type(exc).__name__}[/yellow]: {exc}")
    console.print(f"  still: {storage.node('public:report.txt').read_text().strip()!r}")

    _step(console, "6. Paths cannot leave their mount", "storage.node('public:../secrets.txt')")
    try:
        storage.node("public:../secrets.txt")
    except StorageError as exc:
        console.print(f"  refused: [yellow]{type(exc).__name__}[/yellow]: {exc}")

    _history(console, storage)


def _history(console: Console, storage: StorageManager) -> None:
    cfg = storage.node("home:config/app.json")
    _step(console, "7. 'home' keeps history (versioning: true): every write is a version",
          "cfg.write_text(...) three times; cfg.versions")
    for text in ('{"debug": false}', '{"debug": true}', '{"debug": true, "workers": 4}'):
        cfg.write_text(text)
    for v in cfg.versions:
        mark = "*" if v["is_latest"] else " "
        console.print(f"  {mark} {v['version_id']}  {v['size']:>3} bytes  md5 {v['etag'][:8]}")
    _step(console, "8. Read an old version, or pin a node to one",
          "cfg.open(version=-3).read(); storage.node('home:config/app.json', version=0)")
    console.print(f"  version -3: {cfg.open(version=-3).read()}")
    console.print(f"  snapshot node: {storage.node('home:config/app.json', version=0).read_text()}")
    _step(console, "9. Roll back: the old content comes back as a new version",
          "cfg.rollback(to_version=-3)")
    cfg.rollback(to_version=-3)
    console.print(f"  now: {cfg.read_text()}  ({cfg.version_count} versions)")
    _step(console, "10. Delete keeps the history; verify checks every record and blob",
          "cfg.delete(); storage.verify('home:')")
    cfg.delete()
    report = storage.verify("home:")
    console.print(f"  exists: {cfg.exists()}; versions kept: {cfg.version_count}; "
                  f"verify ok: {report.ok} ({report.checked} records)")
