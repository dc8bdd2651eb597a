"""The ACME manager of a core: runs on every core, acts only while it is the Raft leader.

Each pass reads the replicated state, asks ``acme_plan.next_step`` what is due, and does
that one step, recording its outcome through a replicated ``acme`` command before the
next one. A leader that dies between two steps leaves a state from which the new leader
goes on: the same account, the same order (found again at the ACME server when the old
leader made it but died before recording its URL), the same certificate key.

Challenge answers are published through the state first, and the ACME server is told to
validate only once every reachable core and edge serves them (it may ask any of them).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import aiohttp

from dispa.cluster import acme_client
from dispa.cluster.acme_client import AcmeFailure, AcmeServer
from dispa.cluster.acme_plan import Step, next_step
from dispa.cluster.bridge import CommandFailed
from dispa.config.acme import Acme
from dispa.config.bounds import load_json

log = logging.getLogger("dispa.acme")

POLL = 1.0  # between looks at an order the ACME server is validating or issuing
PUBLISH_WAIT = 5.0  # longest wait for every node to serve the challenge answers
ORDER_TIMEOUT = 900.0  # an order not done after this long is given up (and retried later)
STEP_FAILURES = 5  # failed passes in a row on one order before it is given up
ERROR_BACKOFF = (2.0, 300.0)  # waits after a failed step that is not an order's


class AcmeManager:
    def __init__(self, node) -> None:
        self.node = node
        self.last_error: str | None = None
        self.last_step: Step | None = None
        self._server: AcmeServer | None = None
        self._server_for: tuple | None = None
        self._failures = 0  # failed passes in a row
        self._answered: set[str] = set()  # challenge URLs this leader already answered

    @property
    def store(self):
        return self.node.store

    def config(self) -> Acme | None:
        shared = self.store.state.current_config() or {}
        raw = shared.get("acme")
        return Acme.model_validate(raw) if raw else None

    def leading(self) -> bool:
        return self.store.status()["role"] == "leader"

    def status(self) -> dict:
        step = self.last_step
        return {
            "active": self.leading(),
            "next": {"action": step.action, "why": step.why, "in": round(step.wait, 1)}
            if step
            else None,
            "last_error": self.last_error,
        }

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        while True:
            config = self.config()
            if config is not None and self.node.config.cluster.store != "raft":
                self.last_error = (
                    "ACME certificates need the embedded Raft store (cluster.store: raft)"
                )
            if config is None or not self.leading():
                self._server = None
                await self.node.wait_changed(1.0)
                continue
            try:
                await self._pass(config)
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except (AcmeFailure, CommandFailed) as error:
                await self._failed(str(getattr(error, "reason", None) or error))
            except Exception as error:  # a bug must not end ACME on this core for good
                log.exception("ACME step failed")
                await self._failed(f"internal error: {type(error).__name__}")

    async def _failed(self, message: str) -> None:
        self._failures += 1
        self.last_error = message
        log.warning("ACME: %s", message)
        order = self.store.state.acme.order
        if order is not None and self._failures >= STEP_FAILURES and self.leading():
            await self._finish(order, {"error": message})
            self._failures = 0
            return
        low, high = ERROR_BACKOFF
        await asyncio.sleep(min(high, low * 2 ** (self._failures - 1)))

    async def _pass(self, config: Acme) -> None:
        state = self.store.state.acme
        now = time.time()
        step = self.last_step = next_step(state, config, now)
        if step.action == "wait":
            # Woken early by any change of the state (a new config, a new leader).
            await self.node.wait_changed(min(step.wait, 60.0))
        elif step.action == "create_account":
            key = await asyncio.to_thread(acme_client.new_account_key)
            await self._command("set_account", directory=config.directory, key=key, now=now)
        elif step.action == "register":
            server = await self._connect(config)
            url = await asyncio.to_thread(server.register, config.email)
            await self._command("account_registered", directory=config.directory, url=url)
            log.info("ACME account registered at %s: %s", config.directory, url)
        elif step.action == "order":
            self._answered.clear()  # challenge URLs of earlier orders
            log.info(
                "ACME: ordering a certificate for %s (%s)", ", ".join(config.domains), step.why
            )
            key = await asyncio.to_thread(acme_client.new_certificate_key)
            csr = await asyncio.to_thread(acme_client.certificate_request, key, config.domains)
            await self._command(
                "start_order",
                order_id=uuid.uuid4().hex,
                domains=list(config.domains),
                key=key,
                csr=csr,
                node=self.node.node_id,
                now=now,
            )
        else:
            await self._drive(config, dict(state.order))

    async def _command(self, command: str, **args) -> dict:
        result = await self.store.acme(command, args)
        if not result.get("ok"):
            # A refusal means another leader moved on: the next pass reads the new state.
            log.info("ACME %s refused: %s", command, result.get("error"))
        return result

    async def _connect(self, config: Acme) -> AcmeServer:
        account = self.store.state.acme.account
        key = (config.directory, account["key"], account["url"], config.ca_bundle)
        if self._server is None or self._server_for != key:
            self._server = await asyncio.to_thread(AcmeServer, *key)
            self._server_for = key
        return self._server

    # ---------------------------------------------------------------- one order

    async def _drive(self, config: Acme, order: dict) -> None:
        now = time.time()
        if now - order["started"] > ORDER_TIMEOUT:
            await self._finish(order, {"error": f"not done within {ORDER_TIMEOUT:.0f} s"})
            return
        server = await self._connect(config)
        if order["url"] is None:
            await self._create_order(server, order)
            return
        details = await asyncio.to_thread(server.order, order["url"])
        status = details["status"]
        if status == "pending":
            await self._answer(server, order, details)
        elif status == "ready":
            await asyncio.to_thread(
                server.finalize, order["url"], details["finalize"], order["csr"]
            )
            await self._note(order, "finalizing")
            await asyncio.sleep(POLL)
        elif status == "processing":
            await asyncio.sleep(POLL)
        elif status == "valid" and details["certificate"]:
            chain = await asyncio.to_thread(server.download, details["certificate"])
            described = acme_client.describe_certificate(chain)
            await self._finish(order, {"certificate": {"chain": chain, **described}})
            log.info(
                "ACME: certificate %s for %s issued, valid until %s",
                described["serial"],
                ", ".join(order["domains"]),
                acme_client.utc(described["not_after"]),
            )
        else:
            await self._finish(order, {"error": _why_invalid(details)})

    async def _create_order(self, server: AcmeServer, order: dict) -> None:
        state = self.store.state.acme
        known = {entry["url"] for entry in state.history if entry.get("url")}
        # The leader that recorded this order may have made it and died before recording
        # its URL: adopt that one rather than make a second.
        url = await asyncio.to_thread(server.find_order, order["domains"], known)
        if url is None:
            url = await asyncio.to_thread(server.new_order, order["csr"])
        else:
            log.info("ACME: resuming order %s made by an earlier leader", url)
        details = await asyncio.to_thread(server.order, url)
        answers = {}
        for authorization in details["authorizations"]:
            challenge = authorization["challenge"]
            if authorization["status"] == "pending" and challenge is not None:
                answers[challenge["token"]] = {
                    "domain": authorization["domain"],
                    "answer": server.key_authorization(challenge["token"]),
                }
        await self._command(
            "order_created",
            order_id=order["id"],
            url=url,
            challenges=answers,
            node=self.node.node_id,
            now=time.time(),
        )

    async def _answer(self, server: AcmeServer, order: dict, details: dict) -> None:
        await self._wait_published(self.store.state.acme.seq)
        for authorization in details["authorizations"]:
            challenge = authorization["challenge"]
            if authorization["status"] != "pending":
                continue
            if challenge is None:
                await self._finish(
                    order, {"error": f"{authorization['domain']}: no http-01 challenge offered"}
                )
                return
            if challenge.get("status") == "pending" and challenge["url"] not in self._answered:
                await asyncio.to_thread(server.answer, challenge)
                self._answered.add(challenge["url"])
        if order["status"] != "answered":
            await self._note(order, "answered")
        await asyncio.sleep(POLL)

    async def _note(self, order: dict, status: str) -> None:
        await self._command(
            "order_step",
            order_id=order["id"],
            status=status,
            node=self.node.node_id,
            now=time.time(),
        )

    async def _finish(self, order: dict, outcome: dict) -> None:
        if "error" in outcome:
            log.error("ACME order for %s failed: %s", ", ".join(order["domains"]), outcome["error"])
        await self._command(
            "finish_order",
            order_id=order["id"],
            outcome=outcome,
            node=self.node.node_id,
            now=time.time(),
        )

    async def _wait_published(self, seq: int) -> None:
        """Until every reachable core and edge serves the answers of ``seq`` (bounded)."""
        state = self.store.state
        admins = [m["admin"] for m in state.members.values()] + [
            e["admin"] for e in state.edges.values() if e.get("admin")
        ]
        deadline = time.monotonic() + PUBLISH_WAIT
        pending = set(admins)
        timeout = aiohttp.ClientTimeout(total=1.0)

        async def caught_up(session: aiohttp.ClientSession, admin: str) -> bool:
            try:
                async with session.get(f"http://{admin}/api/v1/certificates") as reply:
                    # An edge reports its own admin address: its answer may be anything.
                    answer = await reply.json(loads=load_json)
                    return answer.get("applied_seq", -1) >= seq
            except (
                aiohttp.ClientError,
                TimeoutError,
                OSError,
                ValueError,
                TypeError,
                AttributeError,
            ):
                return True  # down: it cannot be asked to validate either

        async with aiohttp.ClientSession(timeout=timeout) as session:
            while pending and time.monotonic() < deadline:
                asked = sorted(pending)  # all at once: a silent node costs one timeout
                answers = await asyncio.gather(*(caught_up(session, a) for a in asked))
                pending -= {admin for admin, done in zip(asked, answers, strict=True) if done}
                if pending:
                    await asyncio.sleep(0.1)
        if pending:
            log.warning("ACME: %s still lag the challenge answers", ", ".join(sorted(pending)))


def _why_invalid(details: dict) -> str:
    for authorization in details["authorizations"]:
        challenge = authorization.get("challenge") or {}
        error = challenge.get("error")
        if error:
            return f"{authorization['domain']}: {error.get('detail') or error.get('type')}"
    error = details.get("error") or {}
    return error.get("detail") or f"the ACME server says the order is {details['status']}"
