"""The ``storied`` command line."""
