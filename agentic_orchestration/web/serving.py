"""Serving the web UI with uvicorn: for ``main.py --web`` (``cli.web_cmd``) and, in a
thread, for tests and benchmarks (``BackgroundServer``).

The socket is bound here, before uvicorn starts, so a server on port 0 knows its port
before it serves. uvicorn's access log is off: a browser's first URL may carry ``?token=``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from typing import Any

from agentic_orchestration.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["BackgroundServer", "bind", "is_loopback", "url_of", "uvicorn_server"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to be loopback
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ConfigError naming the address when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--web cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def uvicorn_server(app: Any) -> Any:
    """A ``uvicorn.Server`` for ``app`` (run it with ``sockets=[bind(...)]``)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class BackgroundServer:
    """The web UI in a daemon thread on ``host`` and a free port: ``url``, ``app``,
    ``stop()``; a context manager that starts and stops it."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = bind(host, port)
        self.url = url_of(host, self._sock.getsockname()[1])
        self._server = uvicorn_server(app)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="web-ui-server", daemon=True)

    def start(self) -> BackgroundServer:
        """Start serving; returns once uvicorn accepts connections."""
        import time

        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.02)
        if not self._server.started:
            raise RuntimeError("the web UI server did not start (see the log)")
        return self

    def stop(self) -> None:
        """Stop serving (the app's shutdown cancels runs still going) and wait for it."""
        self._server.should_exit = True
        self._thread.join(60)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
