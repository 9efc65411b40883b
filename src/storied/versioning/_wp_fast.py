"""The portable engine's write path: what it looks up once per engine instead of once per write.

A versioned write makes five or six storage calls on storied's own objects (blob, record,
announcement, the announcement listing, the journal entry). The layers a mount stacks above its
adapter that pass storied's reserved area through untouched (``reserved_passthrough``: the
reference layer, the compression layer) only forward those calls, so the engine addresses the
adapter below them directly when its history root is in that area. Layers that do act on such
paths (permissions, retries, fault injection in tests) never set the flag and stay in the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

from storied import paths
from storied.backends.base import Backend, WrappedBackend

__all__ = ["holding_of", "reserved_adapter"]


def reserved_adapter(backend: Backend, root: str) -> Backend:
    """The backend to address for objects under ``root``: below every layer that passes
    storied's reserved area through untouched when ``root`` is in that area (``.storied``),
    else ``backend`` itself (a history kept elsewhere goes through every layer)."""
    if not paths.is_hidden(root):
        return backend
    inner = backend
    while isinstance(inner, WrappedBackend) and getattr(inner, "reserved_passthrough", False):
        inner = inner.inner
    return inner


def holding_of(*backends: Backend) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the ``holding()`` block (see :meth:`LocalBackend.holding`) of each distinct
    adapter below ``backends``, entered together (a storage without one adds nothing; two
    mounts over one adapter enter it once, as the re-entrant block did anyway)."""
    found: list[Callable[[], AbstractContextManager[Any]]] = []
    for backend in backends:
        hold = getattr(backend.unwrap(), "holding", None)
        if callable(hold) and hold not in found:
            found.append(hold)
    if not found:
        return nullcontext
    if len(found) == 1:
        return found[0]

    first, second, *more = found

    @contextmanager
    def every() -> Iterator[None]:
        with first(), second(), ExitStack() as stack:
            for hold in more:
                stack.enter_context(hold())
            yield

    return every
