"""The ``storied web`` command: the history browser (:mod:`storied.web`) served by uvicorn.

``storied web [--config F] [--host 127.0.0.1] [--port 8765] [--read-only] [--token T]`` binds
the address itself (so ``--port 0`` takes a free port and the printed URL is the real one),
prints ``http://HOST:PORT/?token=...`` on standard output and serves until Ctrl-C. It opens no
browser. A port in use, a bad host or a missing ``web`` extra is one ``error:`` line, exit 1.
"""

from __future__ import annotations

import secrets
import socket
import sys

import click

__all__ = ["register"]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv4 or IPv6).

    Raises:
        click.ClickException: The address cannot be bound (in use, unknown host, no right).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                                   ) from None
    return sock


def _url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def register(group: click.Group) -> None:
    """Add the command to ``group``."""

    @group.command("web")
    @click.option("--config", "config", default=None, metavar="FILE",
                  help="Mounts file (default ./storied.yaml, or the group's --config).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on (keep it on loopback unless you must).")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
                  help="Port to listen on (0: a free one).")
    @click.option("--read-only", "read_only", is_flag=True,
                  help="Offer and accept no action (restore, tag, annotate, snapshots).")
    @click.option("--token", default=None, metavar="T",
                  help="The access token (default: a random one, printed in the URL).")
    @click.pass_context
    def web(ctx: click.Context, config: str | None, host: str, port: int, read_only: bool,
            token: str | None) -> None:
        """Browse mounts, file histories, diffs and snapshots in a web browser.

        Prints http://127.0.0.1:PORT/?token=... and serves until Ctrl-C; opens nothing.
        """
        from storied.cli.main import _manager

        try:
            import uvicorn
        except ModuleNotFoundError:
            from storied.errors import MissingDependencyError

            raise MissingDependencyError(
                "storied web needs uvicorn: pip install 'storied[web]'") from None
        from storied.web import create_app

        if token is not None and not token.strip():
            raise click.BadParameter("must not be empty", param_hint="--token")
        storage = _manager(config or (ctx.obj or {}).get("config"))
        secret = token or secrets.token_urlsafe(24)
        app = create_app(storage, read_only=read_only, token=secret)
        sock = _bind(host, port)
        bound = sock.getsockname()[1]
        click.echo(f"storied web: {_url(host, bound, secret)}")
        if host not in ("127.0.0.1", "::1", "localhost"):
            click.echo(f"warning: listening on {host}: anyone who can reach it and has the "
                       "token can use it", err=True)
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", server_header=False,
            proxy_headers=False,  # nothing in front of it: no client may claim another address
        ))
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
            storage.close()
