"""The replicated state of a core cluster, as plain deterministic data and pure commands.

Every core applies the same commands in the same order and must reach the same state, so
a command reads nothing but its arguments: time, ids and randomness come in as arguments.
Every command is *total*: it returns a result (``{"ok": False, "error": ...}`` for a
refusal) and never raises, because an exception inside a replicated method would stall
the whole Raft cluster. Inputs are validated before they are submitted, and checked again
here so a bad command is refused rather than applied half-way.

The state is msgpack-friendly (dicts, lists, str, int, float) so snapshots on disk are
msgpack compressed with zstandard.
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from dispa.cluster.acme_state import AcmeState
from dispa.config.schema import RateLimit
from dispa.discovery.merge import carry_discovered_endpoints

# Config revisions kept for history and rollback.
HISTORY_LIMIT = 100
# Sessions kept at most; past this the ones closest to expiry are dropped first.
SESSION_LIMIT = 200_000
# Cache purges kept for edges that resume their watch; an edge further behind than this
# empties its whole cache instead (safe: it only costs misses).
PURGE_LIMIT = 1000
# Edges reported at most (an edge that stops reporting is dropped after a day).
EDGE_LIMIT = 10_000
EDGE_FORGET_AFTER = 86_400.0


def _refuse(error: str, **details) -> dict:
    return {"ok": False, "error": error, **details}


def _rate_limit_terms(config: dict | None) -> dict[str, tuple[int, float]]:
    """The config's global rate limits by name, with the schema's defaults filled in."""
    terms = {}
    for entry in (config or {}).get("rate_limits") or ():
        try:
            limit = RateLimit.model_validate(entry)
        except ValidationError:
            continue  # a stored config was validated when written; never trust it blindly
        terms[limit.name] = (limit.limit, limit.window)
    return terms


class ClusterState:
    """Config snapshots with revisions, members, the quota ledger and sticky sessions."""

    def __init__(self) -> None:
        self.revision = 0
        # revision (as str, msgpack map keys stay simple) -> {"config", "time", "author", "note"}
        self.history: dict[str, dict] = {}
        # node id -> {"raft": address, "admin": address, "region": name}
        self.members: dict[str, dict] = {}
        # "limit\x00key" -> {"window": start, "limit": n, "leases": {node: tokens}}
        self.quota: dict[str, dict] = {}
        # "upstream\x00session" -> [endpoint address, expires_at]
        self.sessions: dict[str, list] = {}
        # cache purges, oldest first: {"seq", "urls", "tags", "time"}
        self.purges: list[dict] = []
        self.purge_seq = 0
        # edge name -> {"region", "admin", "revision", "purge_seq", "seen"}
        self.edges: dict[str, dict] = {}
        # ACME account, order in progress and certificate (see acme_state.py)
        self.acme = AcmeState()
        # Derived from the current config, not state: rate limit name -> (limit, window),
        # and the config object they were read from
        self._terms: dict[str, tuple[int, float]] = {}
        self._terms_of: dict | None = None

    # ------------------------------------------------------------------ config

    def put_config(
        self,
        config: dict,
        expected_revision: int | None,
        now: float,
        author: str = "",
        note: str = "",
    ) -> dict:
        """Store a new config revision; compare-and-set when ``expected_revision`` is given."""
        if not isinstance(config, dict):
            return _refuse("config must be a mapping")
        if expected_revision is not None and expected_revision != self.revision:
            return _refuse("stale revision", revision=self.revision)
        # A config that names a discovered pool but lists no endpoints keeps the ones found
        # so far, or every operator write would empty those upstreams for a moment.
        config = carry_discovered_endpoints(self.current_config(), config)
        current = self.history.get(str(self.revision))
        if current is not None and current["config"] == config:
            return {"ok": True, "revision": self.revision, "unchanged": True}
        self.revision += 1
        self.history[str(self.revision)] = {
            "config": config,
            "time": float(now),
            "author": str(author),
            "note": str(note),
        }
        self._trim_history()
        return {"ok": True, "revision": self.revision}

    def rollback(
        self, to_revision: int, expected_revision: int | None, now: float, author: str = ""
    ) -> dict:
        """A new revision whose config is that of an earlier one (history is never rewritten)."""
        target = self.history.get(str(to_revision))
        if target is None:
            return _refuse("unknown revision", revision=self.revision)
        return self.put_config(
            target["config"],
            expected_revision,
            now,
            author,
            note=f"rollback to revision {to_revision}",
        )

    def restore_backup(self, backup: dict, now: float) -> dict:
        """Disaster recovery: the backup's config becomes a new revision.

        It is numbered after both this cluster's latest revision and the backup's, so no
        revision number ever names two configs. This cluster's history and members stay
        (a backup of another cluster must not overwrite who is in this one); sessions of
        the backup that have not expired are added.
        """
        if not isinstance(backup, dict):
            return _refuse("not a backup")
        restored = ClusterState.from_plain(backup)
        for slot, entry in restored.sessions.items():
            if entry[1] > now:
                self.sessions[slot] = list(entry)
        config = restored.current_config()
        if config is None:
            return {"ok": True, "revision": self.revision, "unchanged": True}
        newest = max(self.revision, restored.revision)
        if newest == self.revision and config == self.current_config():
            return {"ok": True, "revision": self.revision, "unchanged": True}
        self.revision = newest + 1
        self.history[str(self.revision)] = {
            "config": config,
            "time": float(now),
            "author": "restore",
            "note": f"restored from a backup at revision {restored.revision}",
        }
        self._trim_history()
        return {"ok": True, "revision": self.revision}

    def current_config(self) -> dict | None:
        entry = self.history.get(str(self.revision))
        return entry["config"] if entry else None

    def _trim_history(self) -> None:
        if len(self.history) > HISTORY_LIMIT:
            for key in sorted(self.history, key=int)[: len(self.history) - HISTORY_LIMIT]:
                del self.history[key]

    # ------------------------------------------------------------------ members

    def add_member(self, node_id: str, raft: str, admin: str, region: str) -> dict:
        self.members[str(node_id)] = {"raft": str(raft), "admin": str(admin), "region": str(region)}
        return {"ok": True}

    def remove_member(self, node_id: str) -> dict:
        if self.members.pop(str(node_id), None) is None:
            return _refuse("unknown member")
        for entry in self.quota.values():
            entry["leases"].pop(str(node_id), None)
        return {"ok": True}

    # ------------------------------------------------------------------ quota ledger

    def lease_terms(self, limit_name: str) -> tuple[int, float] | None:
        """``(limit, window)`` of the rate limit named so in the current config, or None.

        What a lease is granted against: a lessee's request names a limit, never its size.
        Read only (not a command), from the event loop while Raft's thread may be applying
        a command: keyed on the config object itself, never on the revision, which a
        command raises a moment before it stores the config.
        """
        config = self.current_config()
        if config is not self._terms_of:
            self._terms = _rate_limit_terms(config)
            self._terms_of = config
        return self._terms.get(limit_name)

    def lease_quota(
        self, limit_name: str, key: str, node: str, want: int, limit: int, window: float, now: float
    ) -> dict:
        """Grant ``node`` up to ``want`` tokens of the current window of ``limit``.

        Windows are aligned to multiples of ``window`` seconds from the epoch, so every core
        agrees on which window a time falls in. Tokens never granted beyond ``limit`` in one
        window: over-admission is bounded by what nodes spend of their leases, not by luck.
        """
        if want <= 0 or limit <= 0 or window <= 0 or not math.isfinite(now):
            return _refuse("bad lease request")
        start = math.floor(now / window) * window
        slot = f"{limit_name}\x00{key}"
        entry = self.quota.get(slot)
        if entry is not None and start < entry["window"]:
            # A request stamped in a window that has already rolled over on the ledger (it
            # was sent late, or by a node whose clock lags): nothing left to grant, and the
            # newer window's ledger must not be reset by it.
            return {"ok": True, "granted": 0, "window": start, "outstanding": 0}
        if entry is None or entry["window"] != start or entry["limit"] != limit:
            entry = self.quota[slot] = {"window": start, "limit": int(limit), "leases": {}}
        granted_total = sum(entry["leases"].values())
        grant = max(0, min(int(want), int(limit) - granted_total))
        if grant:
            entry["leases"][node] = entry["leases"].get(node, 0) + grant
        self._forget_old_windows(now, window)
        return {"ok": True, "granted": grant, "window": start, "outstanding": granted_total + grant}

    def return_quota(
        self, limit_name: str, key: str, node: str, tokens: int, window_start: float
    ) -> dict:
        """Give back unspent tokens of a window, so other nodes may lease them."""
        entry = self.quota.get(f"{limit_name}\x00{key}")
        if entry is None or entry["window"] != window_start or tokens <= 0:
            return {"ok": True, "returned": 0}
        held = entry["leases"].get(node, 0)
        back = min(held, int(tokens))
        entry["leases"][node] = held - back
        return {"ok": True, "returned": back}

    def _forget_old_windows(self, now: float, window: float) -> None:
        # Bounded memory: a window more than two lengths old can no longer be leased from.
        if len(self.quota) < 1024:
            return
        horizon = now - 2 * max(window, 1.0)
        for slot in [s for s, e in self.quota.items() if e["window"] < horizon]:
            del self.quota[slot]

    # ------------------------------------------------------------------ sticky sessions

    def put_session(
        self, upstream: str, session: str, endpoint: str, ttl: float, now: float
    ) -> dict:
        if ttl <= 0 or not session:
            return _refuse("bad session")
        self.sessions[f"{upstream}\x00{session}"] = [str(endpoint), float(now) + float(ttl)]
        if len(self.sessions) > SESSION_LIMIT:
            self.expire_sessions(now)
            if len(self.sessions) > SESSION_LIMIT:
                by_expiry = sorted(self.sessions.items(), key=lambda item: item[1][1])
                for slot, _ in by_expiry[: len(self.sessions) - SESSION_LIMIT]:
                    del self.sessions[slot]
        return {"ok": True}

    def expire_sessions(self, now: float) -> dict:
        expired = [slot for slot, (_, expires) in self.sessions.items() if expires <= now]
        for slot in expired:
            del self.sessions[slot]
        return {"ok": True, "expired": len(expired)}

    def session_endpoint(self, upstream: str, session: str, now: float) -> str | None:
        entry = self.sessions.get(f"{upstream}\x00{session}")
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    # ------------------------------------------------------------------ cache purges

    def purge_cache(self, urls: list, tags: list, now: float) -> dict:
        """Record a purge by URL and by tag; every edge applies it from its watch stream."""
        if not isinstance(urls, list | tuple) or not isinstance(tags, list | tuple):
            return _refuse("urls and tags must be lists")
        urls = [str(u) for u in urls if u]
        tags = [str(t) for t in tags if t]
        if not urls and not tags:
            return _refuse("nothing to purge: give urls or tags")
        self.purge_seq += 1
        self.purges.append({"seq": self.purge_seq, "urls": urls, "tags": tags, "time": now})
        if len(self.purges) > PURGE_LIMIT:
            del self.purges[: len(self.purges) - PURGE_LIMIT]
        return {"ok": True, "seq": self.purge_seq}

    def purges_after(self, seq: int) -> list[dict] | None:
        """Purges newer than ``seq``, or None when some of them are no longer kept."""
        if seq >= self.purge_seq:
            return []
        if self.purges and self.purges[0]["seq"] > seq + 1:
            return None
        if not self.purges:
            return None
        return [p for p in self.purges if p["seq"] > seq]

    # ------------------------------------------------------------------ edges

    def report_edge(
        self, name: str, region: str, admin: str, revision: int, purge_seq: int, now: float
    ) -> dict:
        """An edge says which revision it serves; shown by the cluster status."""
        if not name:
            return _refuse("an edge needs a name")
        self.edges[str(name)] = {
            "region": str(region),
            "admin": str(admin),
            "revision": int(revision),
            "purge_seq": int(purge_seq),
            "seen": float(now),
        }
        for old in [n for n, e in self.edges.items() if now - e["seen"] > EDGE_FORGET_AFTER]:
            del self.edges[old]
        if len(self.edges) > EDGE_LIMIT:
            by_age = sorted(self.edges, key=lambda n: self.edges[n]["seen"])
            for old in by_age[: len(self.edges) - EDGE_LIMIT]:
                del self.edges[old]
        return {"ok": True}

    # ------------------------------------------------------------------ snapshots

    def to_plain(self) -> dict:
        return {
            "revision": self.revision,
            "history": self.history,
            "members": self.members,
            "quota": self.quota,
            "sessions": self.sessions,
            "purges": self.purges,
            "purge_seq": self.purge_seq,
            "edges": self.edges,
            "acme": self.acme.to_plain(),
        }

    @classmethod
    def from_plain(cls, data: dict) -> ClusterState:
        state = cls()
        state.revision = int(data.get("revision", 0))
        state.history = dict(data.get("history", {}))
        state.members = dict(data.get("members", {}))
        state.quota = dict(data.get("quota", {}))
        state.sessions = {k: list(v) for k, v in data.get("sessions", {}).items()}
        state.purges = [dict(p) for p in data.get("purges", [])]
        state.purge_seq = int(data.get("purge_seq", 0))
        state.edges = {k: dict(v) for k, v in data.get("edges", {}).items()}
        state.acme = AcmeState.from_plain(data.get("acme"))
        return state
