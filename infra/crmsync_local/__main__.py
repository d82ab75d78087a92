"""`python -m crmsync_local run|token`: the local stack from the command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from crmsync_local.auth import LocalJwtKeys
from crmsync_local.demo.run import Demo
from crmsync_local.stack import REPO_ROOT, LocalStack, StackOptions


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    for noisy in ("botocore", "boto3", "urllib3", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = StackOptions(
        api_port=args.port,
        visibility_timeout=args.visibility_timeout,
        parameters={"LogLevel": args.function_log_level},
        run_schedules=False,
        state_dir=Path(args.state_dir),
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stack = LocalStack(options)
    demo = None
    try:
        stack.start()
        if args.demo:
            demo = Demo(stack)
            demo.start()
        stack.start_schedules(first_after=2.0)
        print(banner(stack, demo), flush=True)
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping the local stack...", flush=True)
        if demo is not None:
            demo.stop()
        stack.stop()
    return 0


def banner(stack: LocalStack, demo: Demo | None) -> str:
    admin = stack.token("demo-admin", "demo-company", "admin", "admin@demo.crmsync.test")
    lines = [
        "",
        "crmsync local stack is up",
        f"  API        {stack.url}",
        f"  emulators  {stack.runtime_info['emulators']}",
        f"  functions  {', '.join(sorted(stack.functions))}",
        f"  schedules  {', '.join(sorted(stack.schedules))}",
        "",
        "Try:",
        f"  curl -s {stack.url}/health",
        f"  export TOKEN={admin}",
        f'  curl -s -H "Authorization: Bearer $TOKEN" {stack.url}/v1/me',
    ]
    if demo is not None:
        lines += ["", *demo.describe()]
    lines += ["", "Ctrl-C stops everything this started.", ""]
    return "\n".join(lines)


def _token(args: argparse.Namespace) -> int:
    keys = LocalJwtKeys.load_or_create(Path(args.state_dir) / "jwt")
    print(keys.mint(args.user, args.company, args.role, args.email, args.ttl))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crmsync_local")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole stack on loopback")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--no-demo", dest="demo", action="store_false")
    run.add_argument(
        "--visibility-timeout",
        type=int,
        default=30,
        help="local override of every queue's visibility timeout (seconds)",
    )
    run.add_argument("--function-log-level", default="WARNING")
    run.add_argument("--state-dir", default=str(REPO_ROOT / ".local"))
    run.set_defaults(func=_run)
    token = sub.add_parser("token", help="print a bearer token the local API accepts")
    token.add_argument("--user", required=True)
    token.add_argument("--company", required=True)
    token.add_argument("--role", choices=["admin", "user"], default="user")
    token.add_argument("--email")
    token.add_argument("--ttl", type=int, default=12 * 3600)
    token.add_argument("--state-dir", default=str(REPO_ROOT / ".local"))
    token.set_defaults(func=_token)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
