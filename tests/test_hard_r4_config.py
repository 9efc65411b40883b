"""Review R4: configuration values that pass a first look but must be refused as config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageConfigError, StorageManager


@pytest.mark.parametrize("sub", [".storied", ".Storied./x", "x/\uff0estoried"])
def test_relative_mount_on_reserved_area_is_a_config_error(tmp_path: Path, sub: str) -> None:
    storage = StorageManager()
    with pytest.raises(StorageConfigError, match="'ra'"):
        storage.configure([
            {"name": "a", "type": "local", "base_path": str(tmp_path), "versioning": True},
            {"name": "ra", "path": f"a:{sub}"},
        ])
    assert storage.get_mount_names() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("timeout", 1e10), ("timeout", 10**30), ("timeout", "99999999999"), ("retries", 10**30)],
)
def test_values_that_break_later_are_refused(key: str, value: object) -> None:
    """A timeout that overflows at connect time (OverflowError) or near-endless retries."""
    storage = StorageManager()
    config = {"name": "s", "type": "sftp", "host": "127.0.0.1", "username": "u", key: value}
    with pytest.raises(StorageConfigError, match=f"'{key}'"):
        storage.configure([config])
    assert storage.get_mount_names() == []


def test_largest_accepted_timeout_works_with_sockets() -> None:
    import socket

    from storied.backends.registry import MAX_SECONDS

    with socket.socket() as sock:
        sock.settimeout(MAX_SECONDS)
        assert sock.gettimeout() == MAX_SECONDS


def test_very_deep_relative_chain_is_refused_not_a_recursion_error() -> None:
    storage = StorageManager()
    chain = [{"name": "m0", "type": "memory", "store": "r4-deep"}]
    chain += [{"name": f"m{i}", "path": f"m{i - 1}:s"} for i in range(1, 3000)]
    with pytest.raises(StorageConfigError, match="relative mounts deep"):
        storage.configure(chain)
    assert storage.get_mount_names() == []


def test_relative_chain_at_the_limit_reads_and_writes() -> None:
    from storied.core.mounting import _MAX_RELATIVE_DEPTH

    storage = StorageManager()
    chain = [{"name": "m0", "type": "memory", "store": "r4-limit"}]
    chain += [{"name": f"m{i}", "path": f"m{i - 1}:s"} for i in range(1, _MAX_RELATIVE_DEPTH + 1)]
    storage.configure(chain)
    storage.node(f"m{_MAX_RELATIVE_DEPTH}:f").write_bytes(b"deep")
    assert storage.node("m0:" + "s/" * _MAX_RELATIVE_DEPTH + "f").read_bytes() == b"deep"


class _NeverRepr:
    """A value deep inside a config whose full repr must never be built."""

    def __repr__(self) -> str:
        raise AssertionError("the full repr of a rejected value was built")


def test_error_message_never_builds_full_repr_of_a_value() -> None:
    storage = StorageManager()
    with pytest.raises(StorageConfigError, match="'store'"):
        storage.configure([{"name": "m", "type": "memory", "store": [[[[[_NeverRepr()]]]]]}])
    with pytest.raises(StorageConfigError, match="not a mapping"):
        storage.configure([[[[[[_NeverRepr()]]]]]])  # type: ignore[list-item]


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    import time

    levels = ", ".join(
        f"&l{i} [" + ", ".join([f"*l{i - 1}" if i else '"x"'] * 9) + "]" for i in range(8)
    )
    config = tmp_path / "bomb.yaml"
    config.write_text(f"- name: m\n  type: memory\n  store: [{levels}]\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(StorageConfigError, match="'store'") as caught:
        StorageManager().configure(config)
    assert time.monotonic() - started < 2  # the full repr took 4 s at 8 levels, ~40 s at 9
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "- {name: m, type: local, base_path: /srv/a, base_path: /srv/b}\n"),
        (".yaml", "- name: m\n  type: memory\n  name: n\n"),
        (".json", '[{"name": "m", "type": "memory", "store": "a", "store": "b"}]'),
        (".toml", '[[mounts]]\nname = "m"\ntype = "memory"\n[[mount]]\nname = "typo"\n'),
        (".toml", 'name = "m"\ntype = "memory"\n'),
    ],
)
def test_silently_ignored_config_text_is_refused(tmp_path: Path, suffix: str, text: str) -> None:
    """A key given twice (the parser kept the last) or a TOML table outside [[mounts]]."""
    config = tmp_path / f"mounts{suffix}"
    config.write_text(text, encoding="utf-8")
    storage = StorageManager()
    with pytest.raises(StorageConfigError, match=r"twice|mounts"):
        storage.configure(config)
    assert storage.get_mount_names() == []


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    config = tmp_path / "mounts.yaml"
    config.write_text(
        "- &base {name: m1, type: memory, store: r4-merge}\n- <<: *base\n  name: m2\n",
        encoding="utf-8",
    )
    storage = StorageManager()
    storage.configure(config)
    storage.node("m1:f").write_bytes(b"shared")
    assert storage.node("m2:f").read_bytes() == b"shared"
