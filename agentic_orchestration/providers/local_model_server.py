"""The embedded model's own process (``python -m ...providers.local_model_server``).

Started and stopped by ``local_model_process``; never by hand. It loads the GGUF (see
``local_model``), serves it on a random loopback port, and speaks a two-line protocol on
stdout so the parent knows when it is usable:

- ``READY <base_url>`` once the model is loaded and the port is listening;
- ``ERROR <one line>`` (and exit code 2) when the model cannot be loaded (bad file, missing
  package): a configuration problem, reported to the user as such.

Why a process of its own: llama.cpp is native code. A build that does not fit the CPU
(AMX/AVX-512 instructions on a machine without them) or a bug in it ends the process with
SIGSEGV or SIGILL; in its own process that fails a step with a clear line instead of the
whole tool. It exits when its stdin closes, so it never outlives the tool, even after a
SIGKILL of the parent. ``faulthandler`` writes the native crash's Python stack to the log.

In deploy/k8s/coordinator.yaml it is the "local-model" container's command (``--host
0.0.0.0 --port 8080``, ``stdin: true`` so its stdin stays open). There it is PID 1, and the
kernel drops a default-action SIGTERM sent to PID 1, so a pod deletion would wait out its
whole grace period: SIGTERM is handled, and stops the server as stdin EOF does.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from collections.abc import Sequence

from agentic_orchestration.errors import AgenticError

logger = logging.getLogger(__name__)

__all__ = ["main"]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the server like Ctrl-C (and stdin EOF): a clean stop, exit 0."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Load, serve, announce, then serve until stdin reaches EOF."""
    parser = argparse.ArgumentParser(prog="local_model_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    faulthandler.enable()
    from agentic_orchestration.log import configure_logging
    from agentic_orchestration.providers.local_model import LocalModelServer

    announce = sys.stdout
    server = LocalModelServer(host=args.host, port=args.port)
    try:
        configure_logging()
        server.load()
    except AgenticError as exc:
        server.server_close()
        line = " ".join(str(exc).split())
        logger.error("%s", line)
        print(f"ERROR {line}", file=announce, flush=True)
        return exc.exit_code
    server.start()
    logger.info("local model server listening at %s", server.base_url)
    print(f"READY {server.base_url}", file=announce, flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
