"""``main.py`` / ``agentic-orchestration``: parse flags, run one command, map errors to exit codes.

Only the standard library and our light modules are imported before a command runs, so
``--help`` stays fast and never imports CrewAI. Exit codes are listed in
``agentic_orchestration.errors`` and the README.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agentic_orchestration._signals import sigterm_interrupts
from agentic_orchestration.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    AgenticError,
    interrupt_reason,
)

__all__ = ["entrypoint", "main"]

EPILOG = """\
exit codes: 0 success, 1 a step failed, 2 bad input or configuration,
            3 no valid plan, 4 no usable agent provider, 5 run budget spent,
            130 interrupted (Ctrl-C, SIGTERM).
examples:
  main.py --dynamic "Write a haiku about the sea"
  main.py --workflow research_report "The history of the bicycle"
  main.py --dynamic "Compare Rust and Go for CLIs" --plan-only
  main.py --dynamic-iterative "Find three bicycle shops and compare their prices"
  AGENTIC_EXECUTION_BACKEND=subprocess AGENTIC_SUBPROCESS_WORKERS=1 main.py --dynamic "..."
  main.py --resume 20261121T063154Z-986ca6b3
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentic-orchestration",
        description="Turn a goal into a plan of LLM-agent steps and run it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = parser.add_argument_group("run")
    run.add_argument("goal", nargs="?", help="the goal (same as --dynamic GOAL; with "
                     "--workflow it fills the workflow's {topic})")
    run.add_argument("--dynamic", metavar="GOAL", help="plan the goal (router first, then "
                     "the dynamic planner) and run the plan")
    run.add_argument("--dynamic-iterative", metavar="GOAL",
                     help="plan the goal, then revise the steps not started yet after each "
                     "step (or wave of parallel steps) until the goal is met or "
                     "AGENTIC_MAX_REPLANS revisions were made")
    run.add_argument("--workflow", metavar="NAME_OR_PATH",
                     help="run a static workflow: a name under config/workflows/ or a YAML path")
    run.add_argument("--no-router", action="store_true",
                     help="with --dynamic: always plan, never pick a static workflow")
    run.add_argument("--plan-only", action="store_true",
                     help="print the plan as JSON and stop (nothing is executed)")
    run.add_argument("--execution-backend", metavar="NAME",
                     help="one-off override of AGENTIC_EXECUTION_BACKEND "
                     "(inprocess, subprocess, kubernetes)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress output; print only the final answer")
    run.add_argument("--resume", metavar="RUN_ID",
                     help="continue a subprocess/kubernetes run from its run store: steps with "
                     "a successful result.json are not run again")
    worker = parser.add_argument_group("worker (used by the subprocess and kubernetes backends)")
    worker.add_argument("--execute-step", metavar="SPEC",
                        help="run one step from a v0.1 step spec JSON file and write "
                        "{run_store}/{run_id}/{step_id}/result.json")
    worker.add_argument("--run-id", metavar="RUN", help="with --execute-step: the run id; "
                        "with a run: its id instead of a new one (the web UI uses it)")
    worker.add_argument("--step-id", metavar="STEP", help="with --execute-step: the step id")
    listing = parser.add_argument_group("catalogs")
    listing.add_argument("--list-agents", action="store_true",
                         help="list agent providers, available or filtered out and why")
    listing.add_argument("--list-mcps", action="store_true",
                         help="list MCP providers, available or filtered out and why")
    listing.add_argument("--list-workflows", action="store_true",
                         help="list static workflows and whether they can run here")
    listing.add_argument("--kb-search", metavar="TEXT",
                         help="search the knowledge base: past runs whose outputs match TEXT")
    past = parser.add_argument_group("sessions (past runs)")
    past.add_argument("--sessions", nargs="?", const="", metavar="TEXT",
                      help="list past runs, newest first; TEXT filters on goal, run id, "
                      "route, backend and error")
    # sessions.orchestrator_session.STATUSES, spelled out: importing the sessions package
    # would add ~35 ms to every command, --help included (a test keeps the two equal).
    past.add_argument("--status", choices=("running", "ok", "failed", "cancelled",
                                           "interrupted", "budget_exceeded"),
                      help="with --sessions: only these")
    past.add_argument("--limit", type=int, default=20, metavar="N",
                      help="with --sessions: at most N runs (default 20)")
    past.add_argument("--session", metavar="RUN_ID", help="show one run in full")
    past.add_argument("--stats", action="store_true",
                      help="per agent provider and kind of step: runs, success rate, "
                      "latency, recoverable failures, tokens")
    past.add_argument("--json", action="store_true",
                      help="with --session or --stats: print JSON")
    web = parser.add_argument_group("web UI")
    web.add_argument("--web", action="store_true",
                     help="serve the web UI (start, watch and cancel runs; history)")
    web.add_argument("--host", metavar="HOST", help="with --web: address to bind "
                     "(default AGENTIC_WEB_HOST, 127.0.0.1)")
    web.add_argument("--port", metavar="PORT", type=int, help="with --web: port "
                     "(default AGENTIC_WEB_PORT, 8765; 0 picks a free one)")
    return parser


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from agentic_orchestration import settings
    from agentic_orchestration.log import configure_logging

    configure_logging()
    settings.quiet_crewai_network()
    settings.extend_tool_path()

    if args.execute_step is not None:
        if not (args.run_id and args.step_id):
            parser.error("--execute-step needs --run-id and --step-id")
        from agentic_orchestration.orchestration.execute_step import execute_step_main

        return execute_step_main(args.execute_step, run_id=args.run_id, step_id=args.step_id)

    if args.resume is not None:
        given = [flag for flag, value in (
            ("a goal", args.goal), ("--dynamic", args.dynamic),
            ("--dynamic-iterative", args.dynamic_iterative), ("--workflow", args.workflow),
            ("--plan-only", args.plan_only)) if value]
        if given:  # silently running the recorded plan instead would be a surprise
            parser.error(f"--resume continues the run's recorded plan and goal: drop "
                         f"{', '.join(given)}")
        from agentic_orchestration.cli import run as run_command

        return run_command.resume(args.resume, backend_override=args.execution_backend,
                                  quiet=args.quiet)

    if args.sessions is not None or args.session is not None or args.stats:
        from agentic_orchestration.cli import sessions_cmd

        if args.session is not None:
            return sessions_cmd.session_command(args.session, as_json=args.json)
        if args.stats:
            return sessions_cmd.stats_command(as_json=args.json)
        return sessions_cmd.list_command(text=args.sessions, status=args.status,
                                         limit=max(1, args.limit))

    if args.kb_search is not None:
        from agentic_orchestration.cli.kb_cmd import kb_search

        return kb_search(args.kb_search)

    if args.web:
        from agentic_orchestration.cli.web_cmd import serve_command

        return serve_command(host=args.host, port=args.port)

    listings = [args.list_agents, args.list_mcps, args.list_workflows]
    if any(listings):
        from agentic_orchestration.cli import listing

        return listing.run_listings(agents=args.list_agents, mcps=args.list_mcps,
                                    workflows=args.list_workflows)

    if sum(bool(g) for g in (args.dynamic, args.dynamic_iterative, args.goal)) > 1:
        parser.error("give the goal once: --dynamic GOAL, --dynamic-iterative GOAL or a "
                     "positional GOAL")
    if args.dynamic_iterative is not None and args.workflow is not None:
        parser.error("--workflow and --dynamic-iterative are exclusive (a workflow is not "
                     "replanned)")
    if args.dynamic_iterative is not None and not args.dynamic_iterative.strip():
        parser.error("--dynamic-iterative needs a goal")
    goal = args.dynamic or args.dynamic_iterative or args.goal
    if args.workflow is None and not goal:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    if args.workflow is not None and args.dynamic:
        parser.error("--workflow and --dynamic are exclusive (give the topic positionally)")

    from agentic_orchestration.cli import run as run_command

    return run_command.run(
        goal=goal or "",
        workflow=args.workflow,
        use_router=not args.no_router,
        plan_only=args.plan_only,
        backend_override=args.execution_backend,
        quiet=args.quiet,
        run_id=args.run_id or "",
        iterative=args.dynamic_iterative is not None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.execute_step is None:
            # Every AGENTIC_* value is checked before any work: a bad one is exit 2 naming
            # it, not a failure after planning. A worker inherits the env its coordinator
            # checked, and reports a bad value in its result.json rather than exiting here.
            from agentic_orchestration import settings

            settings.validate_all()
        with sigterm_interrupts():  # SIGTERM (docker stop, Kubernetes) cleans up as Ctrl-C
            return _dispatch(args, parser)
    except AgenticError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(interrupt_reason(exc), file=sys.stderr)
        return EXIT_INTERRUPTED


def entrypoint() -> None:
    import faulthandler

    from agentic_orchestration.redaction import mask_std_streams

    # A native crash in this process (a C extension) prints its Python stack, not nothing.
    faulthandler.enable(file=sys.__stderr__)

    # Whatever this process prints (CrewAI's console output, a traceback, our own lines)
    # goes through the secret registry first; see agentic_orchestration.redaction.
    mask_std_streams()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # CrewAI and HTTP client threads can keep the interpreter alive at exit; the work is
    # done and flushed by now, so leave without waiting for them.
    os._exit(code)


if __name__ == "__main__":
    entrypoint()
