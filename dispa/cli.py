"""The ``dispa`` command: run, validate (more commands arrive with the cluster)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dispa import __version__
from dispa.config.errors import ConfigError
from dispa.config.load import load_file
from dispa.observe.log_levels import LogLevel, configure_logging, parse_log_level

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispa", description="Dispa, a distributed HTTP/API gateway."
    )
    parser.add_argument("--version", action="version", version=f"dispa {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("DISPA_LOG_LEVEL", "info"),
        type=_log_level,
        metavar="LEVEL",
        help="how much Dispa logs: debug, info, warning or error (default: info, or "
        "$DISPA_LOG_LEVEL); libraries log warnings only, unless LEVEL ends in ':all' "
        "(e.g. debug:all)",
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

    core = commands.add_parser("core", help="run a core node of a Raft cluster")
    core.add_argument("-c", "--config", required=True, help="the core node config file (YAML)")

    edge = commands.add_parser("edge", help="run an edge node that follows the cores")
    edge.add_argument("-c", "--config", required=True, help="the edge node config file (YAML)")

    admin_help = "admin API of any core, e.g. 127.0.0.1:9911 (default: $DISPA_ADMIN)"
    default_admin = os.environ.get("DISPA_ADMIN")

    apply = commands.add_parser("apply", help="apply a shared gateway config to a cluster")
    apply.add_argument("-f", "--file", required=True, help="the shared config (YAML or JSON)")
    apply.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    apply.add_argument("--dry-run", action="store_true", help="show the diff, apply nothing")
    apply.add_argument(
        "--if-revision", type=int, help="apply only if the cluster is still at this revision"
    )

    status = commands.add_parser("status", help="show the cluster: leader, cores, revisions")
    status.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    members = commands.add_parser("members", help="add or remove a core at run time")
    member_commands = members.add_subparsers(dest="member_command", metavar="add|remove")
    member_commands.required = True
    add = member_commands.add_parser("add", help="add a core to the cluster")
    add.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    add.add_argument("--id", required=True, help="the new core's node id")
    add.add_argument("--raft", required=True, help="the new core's Raft address host:port")
    add.add_argument("--core-admin", required=True, help="the new core's admin address")
    add.add_argument("--region", default="default", help="the new core's region")
    remove = member_commands.add_parser("remove", help="remove a core from the cluster")
    remove.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    remove.add_argument("--id", required=True, help="the node id of the core to remove")

    backup = commands.add_parser("backup", help="write the whole cluster state to a file")
    backup.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    backup.add_argument("-o", "--output", required=True, help="the backup file to write")

    restore = commands.add_parser("restore", help="restore a backup into a running cluster")
    restore.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    restore.add_argument("-i", "--input", required=True, help="the backup file to read")

    commands.add_parser(
        "register", help="keep this service's endpoint registered in etcd (see --help)"
    )
    commands.add_parser(
        "drill", help="chaos and failover drills: drill list, drill run NAME (see --help)"
    )
    ai = commands.add_parser("ai", help="the learning module's tools: ai score FILE.csv")
    ai.add_argument("tool", choices=["score"], help="score: anomaly scores of a CSV series")
    purge = commands.add_parser(
        "purge", help="purge cached responses: every edge (a core's admin), or one gateway's"
    )
    purge.add_argument(
        "--admin", default=default_admin, required=default_admin is None, help=admin_help
    )
    purge.add_argument(
        "--url", action="append", default=[], help="an absolute URL to purge (repeatable)"
    )
    purge.add_argument(
        "--tag", action="append", default=[], help="a Cache-Tag / Surrogate-Key (repeatable)"
    )

    demo = commands.add_parser(
        "demo", help="start a local 3-core cluster with demo upstreams on loopback"
    )
    demo.add_argument(
        "--single", action="store_true", help="one gateway instead of a cluster (listens on --port)"
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="gateway port with --single (default: 8080)"
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1 or value > 256:
        raise argparse.ArgumentTypeError("must be between 1 and 256")
    return value


def _log_level(text: str) -> LogLevel:
    try:
        return parse_log_level(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# Commands with their own argument parsers, handed the rest of the command line.
DELEGATED = {
    ("register",): ("dispa.discovery.register", "main_register"),
    ("ai", "score"): ("dispa.ai.score_cli", "main_score"),
    ("drill",): ("chaos.cli", "main_drill"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for words, (module, function) in DELEGATED.items():
        if tuple(argv[: len(words)]) == words:
            import importlib

            return getattr(importlib.import_module(module), function)(argv[len(words) :])
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
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


def cmd_core(args) -> int:
    from dispa.cluster.node import NoSecret, run_core
    from dispa.config.cluster import CoreConfig
    from dispa.config.load import load_model_file

    config = load_model_file(CoreConfig, args.config)
    _use_uvloop()
    try:
        return asyncio.run(run_core(config))
    except NoSecret as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def cmd_edge(args) -> int:
    from dispa.config.edge import EdgeConfig
    from dispa.config.load import load_model_file
    from dispa.edge.node import run_edge

    config = load_model_file(EdgeConfig, args.config)
    _use_uvloop()
    return asyncio.run(run_edge(config))


def cmd_purge(args) -> int:
    from dispa.cluster import client

    if not args.url and not args.tag:
        print("dispa purge: give at least one --url or --tag", file=sys.stderr)
        return EXIT_BAD_INPUT
    return client.run(client.purge(args.admin, args.url, args.tag))


def cmd_apply(args) -> int:
    from dispa.cluster import client

    return client.run(client.apply(args.admin, args.file, args.dry_run, args.if_revision))


def cmd_status(args) -> int:
    from dispa.cluster import client

    return client.run(client.status(args.admin, args.json))


def cmd_members(args) -> int:
    from dispa.cluster import client

    if args.member_command == "add":
        return client.run(
            client.members_add(args.admin, args.id, args.raft, args.core_admin, args.region)
        )
    return client.run(client.members_remove(args.admin, args.id))


def cmd_backup(args) -> int:
    from dispa.cluster import client

    return client.run(client.backup(args.admin, args.output))


def cmd_restore(args) -> int:
    from dispa.cluster import client

    return client.run(client.restore(args.admin, args.input))


def cmd_demo(args) -> int:
    _use_uvloop()
    if args.single:
        from dispa.runtime.demo import run_demo

        return asyncio.run(run_demo(args.port))
    from dispa.runtime.cluster_demo import run_cluster_demo

    return asyncio.run(run_cluster_demo())


def _use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "core": cmd_core,
    "edge": cmd_edge,
    "purge": cmd_purge,
    "apply": cmd_apply,
    "status": cmd_status,
    "members": cmd_members,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "demo": cmd_demo,
}

if __name__ == "__main__":
    sys.exit(main())
