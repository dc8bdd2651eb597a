"""The ``dispa`` command: run, validate (more commands arrive with the cluster)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from dispa import __version__
from dispa.config.errors import ConfigError
from dispa.config.load import load_file

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispa", description="Dispa, a distributed HTTP/API gateway."
    )
    parser.add_argument("--version", action="version", version=f"dispa {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("DISPA_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="how much to log (default: info)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run a single gateway from a config file")
    run.add_argument("-c", "--config", required=True, help="the gateway config file (YAML)")
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes sharing the listeners (default: 1)",
    )
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    run.add_argument("--stats-dir", help=argparse.SUPPRESS)

    validate = commands.add_parser("validate", help="check a config file and report every problem")
    validate.add_argument("-c", "--config", required=True, help="the config file to check")

    demo = commands.add_parser("demo", help="start a gateway with demo upstreams on loopback")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default: 8080)")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1 or value > 256:
        raise argparse.ArgumentTypeError("must be between 1 and 256")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_FAILURE


def cmd_validate(args) -> int:
    load_file(args.config)
    print("ok")
    return EXIT_OK


def cmd_run(args) -> int:
    if args.workers > 1 and args.worker_index is None:
        from dispa.runtime.supervisor import run_supervisor

        load_file(args.config)  # refuse a bad file before starting anything
        return run_supervisor(args.config, args.workers)
    from dispa.runtime.single import run_single

    _use_uvloop()
    worker = args.worker_index is not None
    return asyncio.run(
        run_single(
            args.config,
            reuse_port=worker,
            admin=not worker,
            watch=not worker,
            worker_index=args.worker_index,
            stats_dir=args.stats_dir,
        )
    )


def cmd_demo(args) -> int:
    from dispa.runtime.demo import run_demo

    _use_uvloop()
    return asyncio.run(run_demo(args.port))


def _use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "demo": cmd_demo}

if __name__ == "__main__":
    sys.exit(main())
