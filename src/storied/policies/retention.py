"""Retention: which versions ``cleanup_versions`` keeps, and why.

A version is kept when any rule keeps it; each rule that does adds a reason:

- ``current``: the file's current version (never removed);
- ``last-N``: among the newest ``keep_last`` versions;
- ``within-D-days``: written less than ``keep_days`` days before ``now``;
- ``tagged:<name>``: a tag points at it (untag it first);
- ``snapshot:<tag>``: a snapshot manifest refers to it;
- ``hold:<why>``: a legal hold or retention period protects it.

With neither ``keep_last`` nor ``keep_days`` nothing is removed (no rule means no cleanup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from storied.errors import InvalidArgumentError

__all__ = ["Decision", "check_rules", "plan_retention"]


class _Versionish(Protocol):
    @property
    def version_id(self) -> str: ...
    @property
    def last_modified(self) -> datetime: ...
    @property
    def is_latest(self) -> bool: ...


@dataclass(frozen=True)
class Decision:
    """What retention decided for one version."""

    version_id: str
    keep: bool
    reasons: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        """The reasons joined for display (``'remove'`` when there are none)."""
        return ", ".join(self.reasons) if self.reasons else "remove"


def plan_retention(
    versions: Sequence[_Versionish],
    now: datetime,
    keep_last: int | None = None,
    keep_days: float | None = None,
    tags: Mapping[str, Sequence[str]] | None = None,
    snapshots: Mapping[str, Sequence[str]] | None = None,
    holds: Mapping[str, str] | None = None,
) -> list[Decision]:
    """Decide, for each version (oldest first), whether it stays and why.

    Args:
        versions: The file's versions, oldest first.
        now: The moment ``keep_days`` counts back from (a naive datetime is taken as UTC,
            as ``as_of`` is elsewhere).
        keep_last: Keep the newest N versions.
        keep_days: Keep versions younger than this many days.
        tags: ``{version_id: [tag names]}``.
        snapshots: ``{version_id: [snapshot tags]}``.
        holds: ``{version_id: why}`` for versions under legal hold or retention.

    Raises:
        InvalidArgumentError: (a ``ValueError``) ``keep_last`` not an int >= 0 (a bool is
            refused), ``keep_days`` not a number >= 0 (NaN refused; ``inf`` keeps every
            version by age), ``now`` not a datetime.
    """
    check_rules(keep_last, keep_days)
    if not isinstance(now, datetime):
        raise InvalidArgumentError(f"now must be a datetime, not {now!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    active = keep_last is not None or keep_days is not None
    cutoff = None
    if keep_days is not None:
        try:
            cutoff = now - timedelta(days=keep_days)
        except OverflowError:  # inf, or further back than datetime reaches: all are young
            cutoff = datetime.min.replace(tzinfo=now.tzinfo)
    newest = {v.version_id for v in list(versions)[-keep_last:]} if keep_last else set()
    decisions = []
    for version in versions:
        reasons = _reasons(version, newest, keep_last, cutoff, keep_days, tags, snapshots, holds)
        decisions.append(Decision(version.version_id, bool(reasons) or not active, reasons))
    return decisions


def check_rules(keep_last: object, keep_days: object) -> None:
    """Refuse retention rules that mean nothing (before anything is read or deleted).

    Raises:
        InvalidArgumentError: See :func:`plan_retention`.
    """
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
    ):
        raise InvalidArgumentError(f"keep_last must be an int >= 0 or None, not {keep_last!r}")
    if keep_days is not None and (
        isinstance(keep_days, bool)
        or not isinstance(keep_days, int | float)
        or keep_days != keep_days  # NaN
        or keep_days < 0
    ):
        raise InvalidArgumentError(
            f"keep_days must be a number >= 0 (inf keeps everything) or None, not {keep_days!r}"
        )


def _reasons(
    version: _Versionish,
    newest: set[str],
    keep_last: int | None,
    cutoff: datetime | None,
    keep_days: float | None,
    tags: Mapping[str, Sequence[str]] | None,
    snapshots: Mapping[str, Sequence[str]] | None,
    holds: Mapping[str, str] | None,
) -> tuple[str, ...]:
    vid = version.version_id
    reasons: list[str] = []
    if version.is_latest:
        reasons.append("current")
    if vid in newest:
        reasons.append(f"last-{keep_last}")
    if cutoff is not None and version.last_modified > cutoff:
        reasons.append(f"within-{keep_days:g}-days")
    reasons += [f"tagged:{t}" for t in (tags or {}).get(vid, ())]
    reasons += [f"snapshot:{s}" for s in (snapshots or {}).get(vid, ())]
    if holds and vid in holds:
        reasons.append(f"hold:{holds[vid]}")
    return tuple(reasons)
