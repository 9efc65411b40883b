"""Retention: which versions ``cleanup_versions`` keeps, and why.

A version is kept when any rule keeps it; each rule that does adds a reason:

- ``current``: the file's current version (never removed);
- ``last-N``: among the newest ``keep_last`` versions;
- ``within-D-days``: written less than ``keep_days`` days before ``now``;
- ``tagged:<name>``: a tag points at it (untag it first);
- ``snapshot:<tag>``: a snapshot manifest refers to it;
- ``legal-hold``: a legal hold protects it;
- ``retention:<MODE> until <iso>``: a retention period that has not expired protects it
  (these two come from ``holds`` given as reason tuples, :func:`lock_reasons`; a plain string
  ``why`` in ``holds`` is shown as ``hold:<why>``).

Legal holds and retention periods (:class:`Lock`) follow S3 Object Lock's rules on every engine
(:func:`check_retention_change`); whether a retention period has expired is judged by
:func:`clock`, which tests replace with :func:`use_clock` (never by the ``now`` a caller passes to
a cleanup: moving that forward must not release a version).

With neither ``keep_last`` nor ``keep_days`` nothing is removed (no rule means no cleanup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from storied.errors import InvalidArgumentError, StoragePermissionError

__all__ = [
    "CLOCK_MARGIN",
    "MODES",
    "Decision",
    "Lock",
    "check_retention_change",
    "check_rules",
    "clock",
    "lock_reasons",
    "normalize_until",
    "plan_retention",
    "use_clock",
]

#: The retention modes (S3 Object Lock's names).
MODES = ("GOVERNANCE", "COMPLIANCE")


#: How far the storage's clock may be from ours when Object Lock retention is judged from
#: this side (a retention ending, or a default period starting, this close to now is taken
#: as still in force).
CLOCK_MARGIN = timedelta(minutes=5)


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


def clock() -> datetime:
    """The moment retention expiry is judged at (tz-aware UTC; the system clock unless a test
    installed another with :func:`use_clock`)."""
    moment = _clock()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def use_clock(source: Callable[[], datetime]) -> Iterator[None]:
    """Judge retention expiry by ``source()`` inside the block (tests: an injectable clock)."""
    global _clock
    before, _clock = _clock, source
    try:
        yield
    finally:
        _clock = before


def normalize_until(until: object) -> datetime:
    """``until`` as a tz-aware UTC datetime rounded up to the whole second (S3 keeps seconds).

    Raises:
        InvalidArgumentError: Not a datetime, or a naive one.
    """
    if not isinstance(until, datetime):
        raise InvalidArgumentError(f"until must be a datetime, not {until!r}")
    if until.tzinfo is None or until.utcoffset() is None:
        raise InvalidArgumentError(
            f"until must be timezone-aware (e.g. tzinfo=UTC), not the naive {until!r}"
        )
    try:
        moment = until.astimezone(UTC)
    except OverflowError:
        raise InvalidArgumentError(f"until {until!r} is out of range") from None
    if moment.microsecond:
        try:
            moment = moment.replace(microsecond=0) + timedelta(seconds=1)
        except OverflowError:  # the last second datetime can hold: keep it, rounded down
            moment = moment.replace(microsecond=0)
    return moment


@dataclass(frozen=True)
class Lock:
    """The legal hold and retention period of one version.

    Attributes:
        legal_hold: A legal hold is on (it protects until it is removed).
        mode: ``'GOVERNANCE'``, ``'COMPLIANCE'`` or None (no retention).
        until: When the retention period ends (tz-aware UTC), None without one.
    """

    legal_hold: bool = False
    mode: str | None = None
    until: datetime | None = None

    def retained(self, now: datetime | None = None) -> bool:
        """True while the retention period has not expired (judged by :func:`clock`)."""
        if self.mode is None or self.until is None:
            return False
        return self.until > (now or clock())

    def reasons(self, now: datetime | None = None) -> tuple[str, ...]:
        """``('legal-hold', 'retention:GOVERNANCE until <iso>')``: what protects it now."""
        found: list[str] = ["legal-hold"] if self.legal_hold else []
        if self.until is not None and self.retained(now):
            found.append(f"retention:{self.mode} until {self.until.isoformat()}")
        return tuple(found)

    def retention(self) -> dict[str, Any] | None:
        """``{'mode', 'until'}``, or None without a retention period (expired ones included:
        S3 reports them too)."""
        if self.mode is None or self.until is None:
            return None
        return {"mode": self.mode, "until": self.until}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.legal_hold:
            body["legal_hold"] = True
        if self.mode is not None and self.until is not None:
            body["mode"], body["until"] = self.mode, self.until.isoformat()
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lock:
        """The lock a ``refs.json`` ``locks`` entry records (unknown or broken fields protect: a
        malformed ``until`` is read as never expiring)."""
        mode = data.get("mode")
        until: datetime | None = None
        if mode is not None:
            mode = str(mode)
            try:
                until = datetime.fromisoformat(str(data.get("until")))
                until = until if until.tzinfo else until.replace(tzinfo=UTC)
            except ValueError:
                until = datetime.max.replace(tzinfo=UTC)
        return cls(bool(data.get("legal_hold", False)), mode, until)


def check_retention_change(
    target: str, current: Lock, mode: str | None, until: datetime | None,
    bypass_governance: bool = False, now: datetime | None = None,
) -> tuple[str | None, datetime | None]:
    """Check a retention change against S3 Object Lock's rules; return ``(mode, until)``
    normalised (``(None, None)`` removes the retention period).

    Rules, while the current period has not expired: COMPLIANCE can only be extended (same
    mode, later or equal ``until``), never shortened, weakened to GOVERNANCE or removed;
    GOVERNANCE can be extended or turned into COMPLIANCE freely, shortened or removed only with
    ``bypass_governance``. An expired period restricts nothing. A new ``until`` must lie in the
    future.

    Raises:
        InvalidArgumentError: An unknown mode, ``mode`` without ``until`` (or the reverse), a
            naive or past ``until``.
        StoragePermissionError: The change is one the rules refuse (the message names
            ``target``, the current period and the rule).
    """
    now = now or clock()
    if (mode is None) != (until is None):
        raise InvalidArgumentError("mode and until go together: give both, or neither to remove")
    if mode is not None and mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    new_until = normalize_until(until) if until is not None else None
    if new_until is not None and new_until <= now:
        raise InvalidArgumentError(
            f"until {new_until.isoformat()} is not in the future (now {now.isoformat()})"
        )
    if not current.retained(now):
        return mode, new_until
    assert current.until is not None
    held = f"{target} is under {current.mode} retention until {current.until.isoformat()}"
    weaker = new_until is None or new_until < current.until
    if current.mode == "COMPLIANCE":
        if weaker or mode != "COMPLIANCE":
            raise StoragePermissionError(
                f"{held}: COMPLIANCE retention can only be extended, never shortened, "
                "weakened or removed"
            )
    elif weaker and not bypass_governance:
        raise StoragePermissionError(
            f"{held}: shortening or removing GOVERNANCE retention needs bypass_governance=True"
        )
    return mode, new_until


def lock_reasons(locks: Mapping[str, Lock], now: datetime | None = None
                 ) -> dict[str, tuple[str, ...]]:
    """``{version_id: reasons}`` for the versions a lock protects now (for ``holds=``)."""
    now = now or clock()
    found = {vid: lock.reasons(now) for vid, lock in locks.items()}
    return {vid: why for vid, why in found.items() if why}


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
    holds: Mapping[str, str | Sequence[str]] | None = None,
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
        holds: ``{version_id: reasons}`` for versions under legal hold or retention (see
            :func:`lock_reasons`; each reason is shown as given), or ``{version_id: why}``
            (shown as ``hold:<why>``).

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
    holds: Mapping[str, str | Sequence[str]] | None,
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
        why = holds[vid]
        reasons += [f"hold:{why}"] if isinstance(why, str) else list(why)
    return tuple(reasons)
