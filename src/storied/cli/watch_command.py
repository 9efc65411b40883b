"""The ``storied watch`` command: print a versioned mount's journal events as they come.

``storied watch MOUNT:[PATH] [--since CURSOR] [--json] [--poll S] [--once]`` prints one line per
event (``cursor time type mount:path version``; with ``--json`` one JSON object per line with
stable keys: ``cursor``, ``id``, ``type``, ``mount``, ``path``, ``version_id``, ``time``,
``info``), from the events after ``CURSOR`` (default: those after now), checking every ``--poll``
seconds. ``--once`` prints what is there and exits. Ctrl-C ends it quietly with exit code 0;
errors are one line on standard error and exit code 1, as for the other commands.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC
from typing import TYPE_CHECKING, Any

import click

from storied.cli.errors import one_line

if TYPE_CHECKING:
    from storied.events.model import Event

__all__ = ["event_line", "event_row", "register"]


def event_row(event: Event) -> dict[str, Any]:
    """The stable JSON keys of one event (datetimes as ISO 8601)."""
    return {"cursor": event.cursor, "id": event.id, "type": event.type, "mount": event.mount,
            "path": event.path, "version_id": event.version_id, "time": event.time,
            "info": event.info}


def event_line(event: Event) -> str:
    """``cursor time type mount:path version``, control characters escaped (a journal entry
    is data another writer chose: it must not be able to move the cursor or fake lines)."""
    when = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = (event.cursor, when, event.type, f"{event.mount}:{event.path}",
              event.version_id or "-")
    return " ".join(one_line(str(f)) or "-" for f in fields)


def _default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def register(group: click.Group) -> None:
    """Add the command to ``group``."""

    @group.command("watch")
    @click.argument("prefix", metavar="MOUNT:[PATH]")
    @click.option("--since", "since", metavar="CURSOR", default=None,
                  help="Start after this event's cursor ('0': from the oldest kept event). "
                       "Default: events after now.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
                  help="Seconds between looks at the journal.")
    @click.option("--once", is_flag=True, help="Print the events there now, then exit.")
    @click.pass_context
    def watch(ctx: click.Context, prefix: str, since: str | None, as_json: bool, poll: float,
              once: bool) -> None:  # fmt: skip
        """Print the journal events of a versioned mount (at or below PATH) as they happen."""
        from storied.cli.main import _manager
        from storied.events.journal import parse_cursor
        from storied.events.view import journal_for

        storage = _manager(ctx.obj["config"])
        try:
            if ":" not in prefix:
                raise click.ClickException(f"expected MOUNT:[PATH], got {prefix!r}")
            mount = prefix.split(":", 1)[0]
            journal = journal_for(storage, mount)
            if since is not None:
                parse_cursor(since)
            elif journal is not None and not once:
                since = journal.tail_cursor()
            cursor = since
            while True:
                for event in storage.events(prefix, since=cursor):
                    if as_json:
                        sys.stdout.write(json.dumps(event_row(event), sort_keys=True,
                                                    default=_default, ensure_ascii=False))
                        sys.stdout.write("\n")
                    else:
                        sys.stdout.write(event_line(event) + "\n")
                    sys.stdout.flush()
                    cursor = event.cursor
                if once:
                    return
                time.sleep(poll)
        except KeyboardInterrupt:
            ctx.exit(0)
        except ValueError as exc:
            from storied.errors import StorageError

            if isinstance(exc, StorageError):
                raise
            raise click.ClickException(str(exc)) from None
        finally:
            storage.close()
