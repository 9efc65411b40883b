"""Webhook delivery: one background (daemon) thread per endpoint draining its spool.

One attempt is one HTTP POST (``http.client``: redirects are never followed) bounded by the
endpoint's ``timeout`` as a whole, not per socket read. Its outcome:

- 2xx: delivered, the message is removed;
- 408, 409, 425, 429, 5xx, a network error or a timeout: retried. The *endpoint* pauses (its
  consecutive failures pick the delay from :class:`~storied.events.webhooks.RetryPolicy`, with
  jitter; a ``Retry-After`` header, seconds or an HTTP date, wins), then the same message is
  tried first again, so a down endpoint is probed by one request per pause, not one per message;
- 410 Gone: the endpoint is disabled (persisted) and its pending messages dropped (logged);
- 3xx (a redirect, not followed) and every other 4xx: a final failure, logged, the message
  dropped. A message older than ``max_age`` or tried ``max_attempts`` times also is.

Messages come from two sources: the endpoint's spool (:mod:`storied.events.webhook_spool`,
fed by the manager's bus) and, for an endpoint of a versioned mount, that mount's event journal
from the endpoint's cursor (:mod:`storied.events.webhook_journal`). Both are tried oldest
first; a message whose delivery succeeded but whose removal (or cursor update) did not happen
(the process died in between) is sent again with the same ``webhook-id``.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from storied.errors import StorageError
from storied.events.webhook_journal import BATCH, JournalSource
from storied.events.webhook_spool import Message, Spool
from storied.events.webhooks import Webhook, redact_url

__all__ = ["Outcome", "Worker", "attempt", "parse_retry_after"]

log: logging.Logger = logging.getLogger("storied.webhooks")

#: How often an idle worker looks for messages other processes spooled (seconds).
POLL = 1.0
#: How often the spool is trimmed and swept of temporary leftovers (seconds).
TRIM_EVERY = 30.0
_RETRIED = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: ``kind`` is ``'ok'``, ``'retry'``, ``'gone'`` or ``'final'``."""

    kind: str
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _classify(status: int, retry_after: float | None, location: str | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome("ok", status)
    if status == 410:
        return Outcome("gone", status)
    if status in _RETRIED or status >= 500:
        return Outcome("retry", status, retry_after)
    if 300 <= status < 400:
        where = f" to {redact_url(location)}" if location else ""
        return Outcome("final", status, detail=f"redirect{where} not followed")
    return Outcome("final", status)


def attempt(hook: Webhook, msg_id: str, body: bytes) -> Outcome:
    """POST ``body`` to ``hook`` once, signed for now; never raises for network trouble."""
    parts = urlsplit(hook.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "User-Agent": "storied-webhooks/1",
               **hook.headers(msg_id, int(time.time()), body)}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    conn: http.client.HTTPConnection
    if parts.scheme.lower() == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                           timeout=hook.timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=hook.timeout)
    fired: list[bool] = []
    watchdog = threading.Timer(hook.timeout, _abort, (conn, fired))  # the whole attempt
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read(4096)
        return _classify(response.status, parse_retry_after(response.getheader("Retry-After")),
                         response.getheader("Location"))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        timed_out = fired or isinstance(exc, (TimeoutError, socket.timeout))
        detail = f"timed out after {hook.timeout:g} s" if timed_out else type(exc).__name__
        return Outcome("retry", detail=detail)
    finally:
        watchdog.cancel()
        conn.close()


def _abort(conn: http.client.HTTPConnection, fired: list[bool]) -> None:
    fired.append(True)
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Worker:
    """Delivers the spool of one endpoint from a daemon thread.

    ``changed`` is called (no arguments) after every message removed, so ``flush`` waiters
    can count again.
    """

    hook: Webhook
    spool: Spool
    failures: int

    def __init__(self, hook: Webhook, spool: Spool, changed: Callable[[], None]) -> None:
        self.hook, self.spool, self._changed = hook, spool, changed
        self.journals: list[JournalSource] = []  # versioned mounts: read from their journals
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failures = 0  # consecutive retryable failures: picks the next delay
        self._paused_until = 0.0  # monotonic
        self._trimmed_at = -TRIM_EVERY
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"storied-webhook-{hook.key[:8]}")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self, journal: object | None = None) -> None:
        """A message was spooled (or an event appended to the journal store ``journal``):
        look now (unless paused by a failure)."""
        if journal is not None:
            for source in self.journals:
                if source.journal.store is journal:
                    source.due = True
        if self._paused_until > time.monotonic() or self._wake.is_set():
            return  # paused by a failure (it wakes itself), or already woken: spare a switch
        self._wake.set()

    def journal_of(self, mount: str | None) -> JournalSource | None:
        """The journal source of ``mount``, if this endpoint reads that mount's journal."""
        return next((j for j in self.journals if j.mount == mount), None)

    def stop(self, wait: float = 0.0) -> None:
        """End the thread after its current attempt; release the spool's lock."""
        self._stop.set()
        self._wake.set()
        if wait and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)

    @property
    def active(self) -> bool:
        """True while this worker can still deliver (not stopped, endpoint not disabled)."""
        return not self._stop.is_set() and not self.hook.disabled

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before the round: a wake during it is not lost
                self._wake.wait(self._round())
        except Exception:  # pragma: no cover - a bug must not kill deliveries silently
            log.exception("webhook worker for %s crashed", redact_url(self.hook.url))
        finally:
            self.spool.unlock()
            for source in self.journals:
                source.lock.unlock()

    def settled(self) -> bool:
        """True when nothing is pending: the spool is empty and no journal read is due or
        left events behind (what ``flush_webhooks`` waits for)."""
        if any(j.due or j.backlog for j in self.journals):
            return False
        return self.spool.count() == 0

    def _round(self) -> float:
        """Deliver what is due; seconds until the next look."""
        if self.hook.disabled:
            self._stop.set()
            return 0.0
        mine = self.spool.try_lock()  # else another process delivers this spool
        if mine and time.monotonic() - self._trimmed_at > TRIM_EVERY:
            self._trimmed_at = time.monotonic()
            self.spool.trim()  # also while paused: a down endpoint is when it grows
            self.spool.sweep()
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            return min(pause, POLL * 5)
        delay = POLL
        for source in self.journals:
            if not source.lock.try_lock():  # another process of this machine delivers it
                if (source.due or source.backlog) and source.wanted() == 0:
                    try:
                        if source.caught_up():
                            source.due = source.backlog = False
                    except StorageError:
                        pass
                delay = min(delay, max(source.wanted(), 0.05))
                continue
            wait = source.wanted()
            if wait > 0:
                delay = min(delay, wait)
            elif not self._pump(source):
                return max(0.0, self._paused_until - time.monotonic())
            elif source.backlog:
                delay = min(delay, source.wanted())
        if not mine:
            return delay
        for name in self.spool.names():
            if self._stop.is_set():
                return 0.0
            message = self.spool.load(name)
            if message is None:
                continue
            verdict = self._deliver(message)
            if verdict in ("ok", "drop"):
                self.spool.remove(message)
                self._changed()
            elif verdict == "retry":
                self.spool.update(message)
                return max(0.0, self._paused_until - time.monotonic())
            else:
                return 0.0
        return delay

    def _pump(self, source: JournalSource) -> bool:
        """Deliver the journal's next batch; False when the endpoint must pause (or stop)."""
        try:
            events = source.read()
        except StorageError as exc:
            source.errors += 1
            wait = min(60.0, 0.5 * 2 ** min(source.errors, 8))  # no storm while it is down
            log.warning("webhook %s: cannot read the journal of %s (%s); next try in %.1f s",
                        redact_url(self.hook.url), source.mount, exc, wait)
            source.backlog, source.due = False, True  # still pending
            source.read_at = time.monotonic() + wait - source.gap
            return True
        source.errors = 0
        done: str | None = None
        verdict = "ok"
        for event in events:
            if self._stop.is_set():
                verdict = "stop"
                break
            for message in source.messages(event):
                verdict = self._deliver(message)
                if verdict == "retry":
                    source.attempts[message.id] = message.attempts
                    break
                if verdict == "gone":
                    break
                source.attempts.pop(message.id, None)
            if verdict in ("retry", "gone"):
                break
            done = event.cursor
        if done is not None:
            try:
                source.advance(done)
            except StorageError as exc:  # sent again later, with the same webhook-ids
                log.warning("webhook %s: cannot save its cursor on %s (%s)",
                            redact_url(self.hook.url), source.mount, exc)
        # only now: flush_webhooks returns once the batch is delivered *and* its cursor saved
        source.backlog = verdict in ("retry", "stop") or (verdict != "gone"
                                                          and len(events) >= BATCH)
        self._changed()
        return verdict in ("ok", "drop")

    def _deliver(self, message: Message) -> str:
        """One attempt at ``message``: ``'ok'``, ``'drop'`` (failed for good, logged),
        ``'retry'`` (``message.attempts`` counted, the endpoint paused) or ``'gone'`` (the
        endpoint disabled). The caller persists the result."""
        policy = self.hook.retry
        where = redact_url(self.hook.url)
        if time.time() - message.created > policy.max_age:
            log.error("webhook %s: message %s older than %g s; dropped", where, message.id,
                      policy.max_age)
            return "drop"
        outcome = attempt(self.hook, message.id, message.body)
        if outcome.kind == "ok":
            self.failures = 0
            return "ok"
        what = f"HTTP {outcome.status}" if outcome.status else outcome.detail
        if outcome.kind == "gone":
            self.hook.disabled = True
            self.spool.set_disabled(True)
            dropped = self.spool.clear()
            log.error("webhook %s answered 410 Gone: endpoint disabled, %d pending message(s) "
                      "dropped", where, dropped)
            self._changed()
            self._stop.set()
            return "gone"
        if outcome.kind == "final":
            log.error("webhook %s: message %s failed for good (%s); dropped", where,
                      message.id, f"{what} {outcome.detail}".strip())
            return "drop"
        message.attempts += 1
        if message.attempts >= policy.max_attempts:
            log.error("webhook %s: message %s failed for good (%s after %d attempts); dropped",
                      where, message.id, what, message.attempts)
            return "drop"
        self.failures += 1
        wait = policy.delay(self.failures, outcome.retry_after)
        self._paused_until = time.monotonic() + wait
        log.warning("webhook %s: message %s attempt %d failed (%s); next try in %.1f s",
                    where, message.id, message.attempts, what, wait)
        return "retry"
