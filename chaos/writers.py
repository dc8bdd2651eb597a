"""Concurrent config writers with a recorded history.

Each writer PUTs the drill's config with a unique marker (the body of GET /drill/marker,
and the revision's note), round-robin over the cores, and records what its client could
know: ``ok`` with the revision, ``failed`` (certainly not committed: refused, invalid,
503 without maybe_committed), or ``unknown`` (sent, but no answer, or 503 with
maybe_committed). Bounded by a total count and by time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import aiohttp

from chaos import layout

# The server gives up on a commit after 5 s; wait a little longer for its own answer.
WRITE_TIMEOUT = 6.5
PAUSE_AFTER_OK = 0.25
PAUSE_AFTER_FAILURE = 0.1


@dataclass(frozen=True)
class WriteOp:
    op_id: str  # the marker written, unique per write
    writer: int
    core: str
    invoke: float  # drill time it was sent
    complete: float  # drill time its answer came (or the client gave up)
    result: str  # ok | failed | unknown
    revision: int | None = None
    detail: str = ""

    def plain(self) -> dict:
        return asdict(self)


class WriteBudget:
    """The total number of writes all writers may still send (the history keeps 100
    revisions: staying below that keeps every write checkable)."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def config_writer(
    span,
    writer: int,
    cores: dict[str, str],
    endpoints: dict[str, str],
    budget: WriteBudget,
    history: list[WriteOp],
    pause_after_ok: float = PAUSE_AFTER_OK,
) -> None:
    """Write while ``span`` runs and the shared budget lasts; pace the
    writes with ``pause_after_ok`` so the budget lasts the whole drill."""
    names = list(cores)
    timeout = aiohttp.ClientTimeout(total=WRITE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[_sent_tracer()]) as session:
        index = 0
        while span.running() and budget.take():
            core = names[(writer + index) % len(names)]
            op_id = f"w{writer}-{index}"
            op = await _write_once(session, span.clock, writer, core, cores[core], op_id, endpoints)
            history.append(op)
            index += 1
            pause = pause_after_ok if op.result == "ok" else PAUSE_AFTER_FAILURE
            await span.pause(pause)


async def _write_once(session, clock, writer, core, address, op_id, endpoints) -> WriteOp:
    invoke = clock.now()

    def op(result: str, revision: int | None = None, detail: str = "") -> WriteOp:
        return WriteOp(op_id, writer, core, invoke, clock.now(), result, revision, detail)

    config = layout.shared_config(endpoints, op_id)
    sent = {"sent": False}  # set by _sent_tracer once a request head went out
    try:
        async with session.put(
            f"http://{address}/api/v1/config",
            json=config,
            headers={"X-Dispa-Note": op_id, "X-Dispa-Author": f"drill-writer-{writer}"},
            trace_request_ctx=sent,
        ) as reply:
            try:
                body = await reply.json(content_type=None)
            except ValueError:
                body = {}
            status = reply.status
    except aiohttp.ClientConnectorError as error:
        if sent["sent"]:
            # aiohttp sends an idempotent request (PUT) again once when its connection
            # drops: the first try reached the core, which may have committed it.
            return op("unknown", detail=f"sent, then not connected: {error.os_error or error}")
        return op("failed", detail=f"not connected: {error.os_error or error}")
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        # Sent, but no answer: it may have been committed.
        return op("unknown", detail=type(error).__name__)
    if status == 200 and isinstance(body, dict) and body.get("ok"):
        return op("ok", body.get("revision"))
    detail = f"{status} {body.get('error', '') if isinstance(body, dict) else ''}".strip()
    if status == 503 and isinstance(body, dict) and body.get("maybe_committed"):
        return op("unknown", detail=detail)
    return op("failed", detail=detail)


def _sent_tracer() -> aiohttp.TraceConfig:
    """Marks a write's ``trace_request_ctx`` once any try of it sent its head."""

    async def on_headers_sent(session, context, params) -> None:
        if isinstance(context.trace_request_ctx, dict):
            context.trace_request_ctx["sent"] = True

    tracer = aiohttp.TraceConfig()
    tracer.on_request_headers_sent.append(on_headers_sent)
    return tracer
