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
