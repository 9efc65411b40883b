"""The error tree: every class is a StorageError and its builtin, and the docstring lists it."""

from __future__ import annotations

import pytest

import storied.errors as errors

BUILTINS: dict[str, tuple[type[BaseException], ...]] = {
    "VersionNotFoundError": (errors.StorageNotFoundError, FileNotFoundError, IndexError),
    "InvalidEncodingError": (LookupError, ValueError),
    "InvalidArgumentError": (ValueError,),
    "ReadOnlyVersionError": (errors.StoragePermissionError, PermissionError, ValueError),
    "AmbiguousSnapshotError": (LookupError, ValueError),
    "ZipSourceNotFoundError": (errors.StorageNotFoundError, FileNotFoundError, ValueError),
    "ConfigSourceTypeError": (errors.StorageConfigError, ValueError, TypeError),
}


@pytest.mark.parametrize("name", errors.__all__)
def test_every_class_is_a_storage_error_in_the_tree(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.StorageError)
    assert f"── {name} " in (errors.__doc__ or "") or name == "StorageError"


@pytest.mark.parametrize(("name", "bases"), sorted(BUILTINS.items()))
def test_new_classes_are_also_their_builtins(
    name: str, bases: tuple[type[BaseException], ...]
) -> None:
    exc = getattr(errors, name)("what went wrong")
    for base in bases:
        assert isinstance(exc, base), (name, base)
    assert str(exc) == "what went wrong"  # KeyError/IndexError-style quoting is not added


def test_text_codec_errors_construct_like_their_builtins() -> None:
    dec = errors.TextDecodeError("utf-8", b"a\xff", 1, 2, "invalid start byte in v:a.txt")
    assert isinstance(dec, UnicodeDecodeError) and isinstance(dec, errors.StorageError)
    assert dec.start == 1 and "v:a.txt" in str(dec)
    enc = errors.TextEncodeError("ascii", "é", 0, 1, "not ascii in v:b.txt")
    assert isinstance(enc, UnicodeEncodeError) and isinstance(enc, ValueError)
    assert "v:b.txt" in str(enc)
