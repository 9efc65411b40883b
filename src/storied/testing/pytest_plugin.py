"""pytest plugin: the ``storied_cassette`` fixture, with pytest-recording's conventions.

Enabled by the ``pytest11`` entry point (or ``-p storied.testing.pytest_plugin``)::

    def test_upload(storied_cassette):
        storage = StorageManager()
        storage.configure([{'name': 's3', 'type': 's3', 'bucket': 'b', ...}])
        storied_cassette(storage)             # record or replay, per --record-mode
        storage.node('s3:a.txt').write_text('hello')

Cassettes live in ``cassettes/<test module>/<test name>.json`` beside the test file (override
the ``storied_cassette_dir`` / ``storied_cassette_name`` fixtures to change that). The mode is
``--record-mode`` (shared with pytest-recording when both are installed):

``none`` (default)  replay only; a missing cassette or an unrecorded call fails the test.
``once``            replay when the cassette exists, else record it.
``new_episodes``    replay what is recorded, record the calls that are not.
``all``             record everything again (the cassette is replaced).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from storied.core.manager import StorageManager
from storied.testing.recording import CassetteSession

__all__ = ["RECORD_MODES", "StoriedCassette"]

#: The values of ``--record-mode``.
RECORD_MODES = ("once", "none", "new_episodes", "all")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("storied", "storied record/replay")
    try:
        group.addoption(
            "--record-mode",
            action="store",
            default="none",
            choices=RECORD_MODES,
            help="storied cassettes (and pytest-recording): once, none, new_episodes, all",
        )
    except ValueError:  # pytest-recording already added the same option: share it
        pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "storied_cassette(name): the cassette name of this test (default: its name)"
    )


class StoriedCassette:
    """The fixture's value: call it with a manager to record or replay its mounts.

    Attributes:
        path: The cassette file of this test.
        record_mode: The ``--record-mode`` in effect.
    """

    path: Path
    record_mode: str

    def __init__(self, path: Path, record_mode: str) -> None:
        self.path, self.record_mode = path, record_mode
        self._sessions: list[tuple[StorageManager, CassetteSession]] = []

    @property
    def session_mode(self) -> str:
        """What ``record_mode`` means for this cassette: ``record``, ``none`` (replay) or
        ``new_episodes``."""
        if self.record_mode == "all":
            return "record"
        if self.record_mode == "none":
            return "none"
        if not self.path.exists():
            return "record"
        return "none" if self.record_mode == "once" else "new_episodes"

    def __call__(
        self, storage: StorageManager, mounts: Iterable[str] | None = None
    ) -> CassetteSession:
        """Start recording or replaying ``storage`` (every mount, or ``mounts``) on this
        test's cassette; it ends (and is written) when the test ends."""
        mode = self.session_mode
        if mode == "record":
            session = storage.record_mode(self.path, mounts=mounts)
        else:
            session = storage.replay_mode(self.path, mode=mode, mounts=mounts)
        self._sessions.append((storage, session))
        return session

    def close(self) -> None:
        """Stop every session this fixture started (cassettes are written)."""
        while self._sessions:
            storage, session = self._sessions.pop()
            if storage.__dict__.get("_cassette") is session:
                storage.stop_cassette()
            else:
                session.stop()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]", "-", name)


@pytest.fixture
def storied_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """``cassettes/<test module>/`` beside the test file (pytest-recording's layout)."""
    module = Path(str(request.node.fspath))
    return module.parent / "cassettes" / module.stem


@pytest.fixture
def storied_cassette_name(request: pytest.FixtureRequest) -> str:
    """The test's name (``Class.test[param]``), or the ``storied_cassette`` marker's."""
    marker = request.node.get_closest_marker("storied_cassette")
    if marker is not None and marker.args:
        return _safe(str(marker.args[0]))
    name = request.node.name
    if request.cls is not None:
        name = f"{request.cls.__name__}.{name}"
    return _safe(name)


@pytest.fixture
def storied_cassette(
    request: pytest.FixtureRequest, storied_cassette_dir: Path, storied_cassette_name: str
) -> Iterator[StoriedCassette]:
    """Record/replay the storage calls of a test (see the module docstring)."""
    name = storied_cassette_name
    path = Path(storied_cassette_dir) / (name if name.endswith(".json") else f"{name}.json")
    fixture = StoriedCassette(path, str(request.config.getoption("--record-mode")))
    try:
        yield fixture
    finally:
        fixture.close()
