"""The manager's webhook methods: ``add_webhook``, ``remove_webhook``, ``flush_webhooks``.

Each endpoint has a persisted outbox (:mod:`storied.events.webhook_spool`) fed by a
subscription to every event of the manager's bus, and a daemon thread delivering it
(:mod:`storied.events.webhook_worker`). See docs/adr/0015-webhooks.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storied.errors import (
    InvalidArgumentError,
    MountNotFoundError,
    StorageConfigError,
    StorageError,
)

if TYPE_CHECKING:  # the webhook machinery (http.client, ~60 ms) is imported on first use
    from storied.core.node import StorageNode
    from storied.events.bus import EventBus, Subscription
    from storied.events.webhook_journal import JournalSource
    from storied.events.webhook_spool import Spool
    from storied.events.webhook_worker import Worker
    from storied.events.webhooks import RetryPolicy, Secret, Webhook

__all__ = ["WebhookMethods"]

log: logging.Logger = logging.getLogger("storied.webhooks")

#: Keys of one entry of a mount's ``webhooks:`` list.
_CONFIG_KEYS = frozenset({"url", "events", "secret", "secret_env", "timeout"})


def _journaled() -> frozenset[str]:
    """The events a versioned mount's journal records."""
    try:
        from storied.events.journal import JOURNALED
    except ImportError:  # pragma: no cover
        return frozenset()
    return JOURNALED


def _forwarder(manager: WebhookMethods) -> Callable[[StorageNode, dict[str, Any]], None]:
    """The bus callback: a weak reference to ``manager`` (the delivery threads reach the
    subscription, and must not keep a dropped manager alive)."""
    ref = weakref.ref(manager)

    def forward(node: StorageNode, info: dict[str, Any]) -> None:
        target = ref()
        if target is not None:
            target._webhook_event(node, info)

    return forward


def _store_of(node: StorageNode) -> object | None:
    """The journal store ``node``'s events go to (None: its mount keeps no history)."""
    history = getattr(node, "_history", None)
    if history is None:
        return None
    from storied.events.view import store_of

    return store_of(history)


class _Registry:
    """The endpoints of one manager and what waits on them."""

    def __init__(self) -> None:
        self.workers: dict[str, Worker] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.subscription: Subscription | None = None
        self.from_config: dict[str, set[str]] = {}  # mount -> endpoint keys its config added

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def stop_all(self) -> None:
        """Stop every worker (the manager is gone); pending messages stay persisted."""
        with self.lock:
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            worker.stop()


class WebhookMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    _webhook_registry: _Registry | None = None

    if TYPE_CHECKING:
        @property
        def bus(self) -> EventBus: ...

        def has_mount(self, name: str) -> bool: ...

    @property
    def _hooks(self) -> _Registry:
        if self._webhook_registry is None:
            self._webhook_registry = _Registry()
        return self._webhook_registry

    def add_webhook(self, url: str, events: Iterable[str] | None = None,
                    secret: Secret | Sequence[Secret] | None = None, mount: str | None = None,
                    timeout: float = 15, *, retry: RetryPolicy | Sequence[float] | None = None,
                    outbox: str | os.PathLike[str] | None = None) -> Webhook:
        """POST every event in ``events`` (None or ``'*'``: all) on ``mount`` (None: every
        mount) to ``url``, signed per Standard Webhooks with ``secret``, from a background
        thread, retried (``retry``) until delivered; returns the endpoint.

        Messages are persisted before the operation that caused them returns: on a versioned
        ``mount`` the mount's event journal is the outbox (the endpoint's cursor lives in the
        history root, so any process, on any machine, that registers the same ``url`` and
        ``mount`` sends what is pending, including events of processes without the webhook);
        otherwise they wait in ``outbox`` (default ``$XDG_STATE_HOME/storied/outbox``) for the
        next process of this machine that registers the same ``url`` and ``mount``. Registering
        an endpoint again updates its events, secret, timeout and retry policy. An endpoint
        that answered 410 Gone stays disabled (``webhook.disabled``) until
        :meth:`remove_webhook` forgets it.

        Args:
            url: An ``http://`` or ``https://`` URL (user info becomes Basic auth); redirects
                are not followed.
            events: Event names (see :data:`storied.events.EVENTS`).
            secret: ``whsec_`` + base64 (Standard Webhooks), another string (its UTF-8 bytes
                are the key) or bytes; a list of them while rotating (one signature each, the
                receiver accepts any); None sends unsigned messages.
            mount: Only events of this mount.
            timeout: Seconds one delivery attempt may take in all (0 < timeout <= 300).
            retry: A :class:`~storied.events.webhooks.RetryPolicy` or a list of delays.
            outbox: The outbox root directory.

        Raises:
            InvalidArgumentError: A non-http(s) URL, an unknown event, a bad secret or timeout
                (a ``ValueError``; the message never shows the secret).
            MountNotFoundError: ``mount`` names no mount.
        """
        from storied.events.webhook_spool import Spool, default_root
        from storied.events.webhook_worker import Worker
        from storied.events.webhooks import Webhook, redact_url

        hook = Webhook(url, events, secret, mount, timeout, retry)
        if mount is not None and not self.has_mount(mount):
            raise MountNotFoundError(f"Mount point {mount!r} not found (webhook mount)")
        root = Path(outbox) if outbox is not None else default_root()
        registry = self._hooks
        with registry.lock:
            current = registry.workers.get(hook.key)
            if current is not None and current.active:
                current.hook._update(hook)
                return current.hook
        try:
            spool = Spool(root, hook.key, {"url": redact_url(url), "mount": mount})
        except OSError as exc:
            raise InvalidArgumentError(
                f"Webhook outbox {str(root)!r} cannot be used: {exc.strerror or exc}"
            ) from None
        if spool.is_disabled():
            hook.disabled = True
            log.warning("webhook %s answered 410 Gone earlier: it stays disabled until "
                        "remove_webhook() forgets it", redact_url(url))
        worker = Worker(hook, spool, registry.notify)
        source = self._journal_source(hook, spool)  # storage I/O: not under the lock
        if source is not None:
            worker.journals.append(source)
        with registry.lock:
            current = registry.workers.get(hook.key)
            if current is not None and current.active:  # another thread registered it
                current.hook._update(hook)
                return current.hook
            registry.workers[hook.key] = worker
            if registry.subscription is None:
                registry.subscription = self.bus.on("*", _forwarder(self))
                # a manager dropped without close_webhooks() does not leave threads polling
                weakref.finalize(self, registry.stop_all)
        if not hook.disabled:
            worker.start()
        return hook

    def _journal_source(self, hook: Webhook, spool: Spool) -> JournalSource | None:
        """The journal source of ``hook``'s mount when it keeps a journal (versioned), its
        cursor started at the journal's tail; None otherwise (events come from the bus)."""
        from storied.events.webhook_journal import JournalSource, safe_start
        from storied.events.webhooks import redact_url

        if hook.mount is None:
            return None
        try:
            from storied.events.view import journal_for
        except ImportError:  # pragma: no cover - the journal ships with storied
            return None
        try:
            journal = journal_for(self, hook.mount)  # type: ignore[arg-type]
        except StorageError as exc:
            log.warning("webhook %s: mount %r's history cannot be opened (%s); delivering "
                        "from in-process events", redact_url(hook.url), hook.mount, exc)
            return None
        if journal is None:
            return None
        source = JournalSource(hook, journal, spool.dir)
        safe_start(source)
        return source

    def remove_webhook(self, url: str, mount: str | None = None, *, drop_pending: bool = False,
                       outbox: str | os.PathLike[str] | None = None) -> bool:
        """Stop delivering to ``url`` (registered with ``mount``) in this process; True when
        it was registered. Its pending messages stay in the outbox for the next process that
        registers it unless ``drop_pending``; a 410 Gone it answered is forgotten."""
        from storied.events.webhook_spool import Spool, default_root
        from storied.events.webhooks import endpoint_key, redact_url

        key = endpoint_key(url, mount)
        worker = self._stop_webhook(key)
        if worker is not None:
            spool = worker.spool
        else:
            root = Path(outbox) if outbox is not None else default_root()
            if not (root / key).is_dir():
                return False
            spool = Spool(root, key, {"url": redact_url(url), "mount": mount})
        spool.set_disabled(False)
        if drop_pending and spool.try_lock():
            spool.clear()
            spool.unlock()
        self._hooks.notify()
        return worker is not None

    def _stop_webhook(self, key: str) -> Worker | None:
        """Unregister endpoint ``key`` and stop its thread; its worker, if it was there."""
        registry = self._hooks
        with registry.lock:
            worker = registry.workers.pop(key, None)
            for keys in registry.from_config.values():
                keys.discard(key)
        if worker is not None:
            worker.hook.removed = True
            worker.stop(wait=5.0)
        return worker

    def get_webhooks(self) -> list[Webhook]:
        """The endpoints registered in this process (disabled ones included)."""
        with self._hooks.lock:
            return [w.hook for w in self._hooks.workers.values()]

    def flush_webhooks(self, timeout: float | None = 10) -> bool:
        """Wait until no message of an enabled endpoint of this process is pending (True), or
        ``timeout`` seconds passed (False; None waits for ever)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or timeout != timeout):
            raise InvalidArgumentError(f"flush_webhooks timeout: seconds or None, not {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        registry = self._hooks
        while True:
            with registry.lock:
                workers = [w for w in registry.workers.values() if w.active]
            if all(w.settled() for w in workers):
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with registry.changed:  # woken at each delivery; re-count anyway (other processes)
                registry.changed.wait(0.05 if remaining is None else min(remaining, 0.05))

    def close_webhooks(self, wait: float = 5.0) -> None:
        """Stop every delivery thread of this manager (pending messages stay in the outbox)."""
        registry = self._hooks
        with registry.lock:
            workers = list(registry.workers.values())
            registry.workers.clear()
            if registry.subscription is not None:
                registry.subscription.cancel()
                registry.subscription = None
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.stop(wait=wait)

    def _webhook_event(self, node: StorageNode, info: dict[str, Any]) -> None:
        """Bus callback: spool the event for every endpoint that wants it."""
        from storied.events.webhooks import message_body, new_message_id, redact_url

        event, mount = str(info.get("event")), node.mount_name
        with self._hooks.lock:
            workers = list(self._hooks.workers.values())
        targets = [w for w in workers if w.hook.wants(event, mount)]
        if event in _journaled() or (event == "file_written" and _store_of(node) is not None):
            store = _store_of(node)  # (a versioned write's file_written is its journal entry)
            for worker in workers:  # the journal has it: its readers (any mount on it) look
                if store is not None and any(j.journal.store is store for j in worker.journals):
                    worker.wake(journal=store)
            targets = [w for w in targets if w.journal_of(mount) is None]
        if not targets:
            return
        msg_id = new_message_id()
        body = message_body(msg_id, event, mount, node.path, info)
        for worker in targets:
            try:
                message = worker.spool.put(msg_id, body)
            except OSError as exc:
                log.error("webhook %s: cannot spool %s on %s (%s); not delivered",
                          redact_url(worker.hook.url), event, node.fullpath, exc)
                continue
            if worker.hook.disabled:  # a 410 came meanwhile: its clear() may have missed this
                worker.spool.remove(message)
            worker.wake()

    # ------------------------------------------------------------------ mount config
    def _check_webhooks(self, name: str, config: Mapping[str, Any]) -> list[Webhook]:
        """The endpoints of mount ``name``'s ``webhooks:`` list, checked (no I/O).

        Raises:
            StorageConfigError: An entry is not a mapping, has an unknown key, no ``url``, or
                a value :class:`Webhook` refuses (the message never shows a secret).
        """
        entries = config.get("webhooks") or []
        if not isinstance(entries, list):
            raise StorageConfigError(f"Mount {name!r}: 'webhooks' is a list of mappings")
        hooks = []
        for index, entry in enumerate(entries):
            from storied.events.webhooks import Webhook

            where = f"Mount {name!r}: webhooks[{index}]"
            if not isinstance(entry, Mapping):
                raise StorageConfigError(f"{where} is a mapping (url, events, secret, timeout)")
            unknown = sorted(str(k) for k in entry if k not in _CONFIG_KEYS)
            if unknown:
                raise StorageConfigError(f"{where}: unknown key {unknown[0]!r}; accepted keys: "
                                         f"{', '.join(sorted(_CONFIG_KEYS))}")
            if "url" not in entry:
                raise StorageConfigError(f"{where}: 'url' is required")
            secret = entry.get("secret")
            if entry.get("secret_env") is not None:
                env = entry["secret_env"]
                if secret is not None or not isinstance(env, str) or env not in os.environ:
                    raise StorageConfigError(f"{where}: 'secret_env' names an environment "
                                             "variable that is set (and no 'secret' with it)")
                secret = os.environ[env]
            try:
                hooks.append(Webhook(entry["url"], entry.get("events"), secret, name,
                                     entry.get("timeout", 15)))
            except InvalidArgumentError as exc:
                raise StorageConfigError(f"{where}: {exc}") from None
        return hooks

    def _mount_webhooks(self, name: str, config: Mapping[str, Any]) -> None:
        """Register mount ``name``'s ``webhooks:`` (after the mount was added), replacing
        those its previous config registered."""
        from storied.events.webhooks import redact_url

        hooks = self._check_webhooks(name, config)
        keys = {h.key for h in hooks}
        for old in self._hooks.from_config.get(name, set()) - keys:
            self._stop_webhook(old)
        for hook in hooks:
            self._stop_webhook(hook.key)  # the mount may have changed: open its journal again
            try:
                self.add_webhook(hook.url, hook.events, list(hook._keys) or None, name,
                                 hook.timeout)
            except InvalidArgumentError as exc:  # the outbox directory is unusable
                log.error("mount %r: webhook %s not registered: %s", name,
                          redact_url(hook.url), exc)
                keys.discard(hook.key)
        self._hooks.from_config[name] = keys

    def _unmount_webhooks(self, name: str) -> None:
        """Stop the webhooks mount ``name``'s config registered (the mount was deleted)."""
        for key in self._hooks.from_config.pop(name, set()):
            self._stop_webhook(key)
