"""``python -m storied``: the ``storied`` command."""

from storied.cli.main import main

if __name__ == "__main__":
    main()
