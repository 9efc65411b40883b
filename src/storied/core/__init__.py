"""The core: manager, nodes and their helpers. Works with versioning absent."""
