"""Backend adapters and wrappers. See :mod:`storied.backends.base` for the contract."""
