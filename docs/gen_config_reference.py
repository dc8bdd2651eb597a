"""Generate docs/config-reference.md from the config schemas (dispa/config/).

    python docs/gen_config_reference.py           # write docs/config-reference.md
    python docs/gen_config_reference.py --check   # exit 1 if the file is out of date

Three files are covered: the gateway config (``Gateway`` in schema.py), the core node file
(``CoreConfig`` in cluster.py) and the edge node file (``EdgeConfig`` in edge.py). Every
field is walked recursively (nested sections, lists of sections, the filter union by its
``type``). A field's description is its ``Field(description=...)`` together with the entry
for its path in that file's dict below (``DESCRIPTIONS``, ``CORE_DESCRIPTIONS``,
``EDGE_DESCRIPTIONS``); a field with neither, or an entry for a path the schema no longer
has, stops the script with an error, so the reference cannot silently fall behind the
schema. Sections the node files share with the gateway file (listeners, admin) are not
repeated: their rows point to the gateway's table, and the script checks that the gateway
walk covers them. The local-reply and balancing tables are checked the same way against
``dispa/proxy/local_reply.py`` and the balancer factory.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import annotated_types
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Tag,
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the repo's package
    sys.path.insert(0, str(ROOT))

from dispa.config import schema, units  # noqa: E402
from dispa.config.cluster import CoreConfig, SharedConfig  # noqa: E402
from dispa.config.edge import EdgeConfig  # noqa: E402
from dispa.proxy import local_reply, router  # noqa: E402
from dispa.proxy.balancer import POLICIES  # noqa: E402
from dispa.proxy.grpc.status import grpc_status_for  # noqa: E402

OUTPUT = ROOT / "docs" / "config-reference.md"

# ------------------------------------------------------------------ descriptions by path
#
# Paths: ``a.b`` for a section, ``a[]`` for each entry of a list, ``filters[type=NAME]``
# for the filter of that type. Write for operators: what the field does, in plain words.

DESCRIPTIONS: dict[str, str] = {
    # top level
    "listeners": "Addresses the gateway accepts client connections on: HTTP/1.1 and HTTP/2 "
    "(h2c with prior knowledge) on plain TCP, or TLS with `tls` (HTTP/2 by ALPN).",
    "upstreams": "Pools of endpoints that routes forward to.",
    "routes": "Which requests go where. The most specific matching route wins; see "
    "[Routing precedence](#routing-precedence).",
    "filters": "Filters run for every route, before the route's own filters (within a "
    "stage: see [Filters](filters.md) for the order). Each entry is a filter written inline "
    "(`type: ...`) or `use: NAME` of a `filter_definitions` entry.",
    "admin": "The admin HTTP API (health, readiness, metrics, config and upstream state).",
    "access_log": "The JSON access log, one line per request.",
    "drain_timeout": "On SIGTERM: the longest wait for requests in flight before the "
    "remaining connections are cut.",
    # listeners
    "listeners[].name": "Unique name of the listener, used in logs.",
    "listeners[].address": "Where to listen, as `host:port` (`0.0.0.0:80`, `127.0.0.1:8080`, "
    "`[::]:8080`). Must be unique and differ from `admin.address`.",
    "listeners[].limits": "Protection against clients that send too much or too slowly.",
    "listeners[].limits.max_header_bytes": "Largest request head (request line and headers). "
    "A larger head is refused with 431.",
    "listeners[].limits.max_body_bytes": "Largest request body; 0 means no limit. Bodies are "
    "streamed, so memory stays bounded either way. A larger body is refused with 413 "
    "(at once when Content-Length says so, else when the limit is crossed).",
    "listeners[].limits.header_timeout": "Time allowed to receive a complete request head, "
    "counted from the accept on a new connection and from the first byte of the next request "
    "on a keep-alive one. A connection that sent nothing is then closed; one that sent part "
    "of a head gets 408 and is closed.",
    "listeners[].limits.body_timeout": "Longest pause between two pieces of a request body; "
    "otherwise 408 (or the connection is cut if the response has already started). Not "
    "applied, nor `min_body_rate`, to a gRPC call to an `h2` upstream: a stream's client "
    "may stay quiet while the server streams (its deadline and `timeouts.idle` bound it).",
    "listeners[].limits.idle_timeout": "How long a keep-alive connection may sit idle between "
    "requests before the gateway closes it.",
    "listeners[].limits.max_requests_per_connection": "Requests served on one client "
    "connection before the gateway closes it after the response; 0 means no limit.",
    "listeners[].tls": "TLS termination. Left out, the listener speaks plain TCP. Certificate "
    "and key files are checked when the config is loaded (`dispa validate` names each "
    "unreadable file, invalid PEM or key that is not its certificate's). A reload (SIGHUP) "
    "re-reads them even when the config is unchanged: renewed files at the same paths are "
    "served to new connections, while the listening socket and open connections stay. "
    "Relative paths are read beside the config file.",
    "listeners[].tls.certificates": "Server certificates, each chosen by SNI against its "
    "own DNS names (subjectAltName, else the common name); `*.example.com` covers one label. "
    "Exact names win over wildcards, an earlier certificate over a later one; a name no "
    "certificate covers, or a client that sends none, gets the first.",
    "listeners[].tls.certificates[].cert": "PEM file: the certificate, then any intermediate "
    "certificates.",
    "listeners[].tls.certificates[].key": "PEM file: the certificate's private key, unencrypted.",
    "listeners[].tls.min_version": "Oldest TLS version accepted: `1.2` or `1.3`.",
    "listeners[].tls.alpn": "Protocols the listener agrees to by ALPN, most preferred first "
    "(`h2`, `http/1.1`). A client that offers only others gets no ALPN answer, and the "
    "log says so (a warning, at most once a minute per listener, with its address and "
    "what it offered).",
    "listeners[].tls.client_auth": "Client certificates (mTLS). A verified certificate's "
    "subject and subjectAltNames are the request's client identity.",
    "listeners[].tls.client_auth.mode": "`off`: none asked for. `optional`: asked for; a "
    "client may send none, but one it sends must verify. `required`: a client without a "
    "valid certificate fails the handshake.",
    "listeners[].tls.client_auth.ca": "PEM file of the CA certificates client certificates "
    "must chain to; needed by `optional` and `required`.",
    "listeners[].tls.client_auth.forward_header": "Sends the client identity upstream in this "
    'header, as `Subject="CN=client,O=Example";DNS="client.example.com";URI="spiffe://'
    'example.com/client"` (RFC 4514 subject, then one `KIND="value"` per subjectAltName: '
    'DNS, URI, Email, IP; `"` and `\\` escaped with a backslash). Any copy of this header '
    "from the client is removed, so it cannot be forged.",
    # upstreams
    "upstreams[].name": "Unique name of the pool; routes refer to it with `upstream`.",
    "upstreams[].lb": "Load-balancing policy; see [Balancing policies](#balancing-policies).",
    "upstreams[].hash": "For `ring_hash` and `maglev` only: where the hash key comes from, "
    "and bounded load. Left out, these policies hash the client address with a bounded "
    "load of 1.25. Giving it with any other policy is an error.",
    "upstreams[].hash.key": "The hash key: `source_ip` (client address), `path` (request path "
    "without query), `header:NAME` or `cookie:NAME`. A request without that header or "
    "cookie is placed at random.",
    "upstreams[].hash.bounded_load": "Balance factor of consistent hashing with bounded "
    "loads: no endpoint takes more than this many times its weighted share of the requests "
    "in flight; a key whose endpoint is full goes to its next candidate. At least 1.0.",
    "upstreams[].endpoints": "The servers of the pool. An address may appear only once. "
    "At least one is needed, unless `discovery` names a pool: its endpoints then replace "
    "these.",
    "upstreams[].endpoints[].address": "The endpoint as `host:port`. The host is an IP "
    "address or a name resolved when a connection is opened.",
    "upstreams[].endpoints[].weight": "Relative share of traffic, for the policies that use "
    "weights (all but `round_robin`).",
    "upstreams[].endpoints[].region": "The region (a `regions[].name`) this endpoint serves "
    "from. Routes with `geo: nearest` send each client to the endpoints of the nearest "
    "region that has an available one.",
    "regions": "Where endpoints are, for `geo: nearest` routes. An edge locates each client "
    "with its geo database and ranks regions by distance; a node without one ranks its own "
    "region first, then the others in this order.",
    "regions[].name": "Name that `upstreams[].endpoints[].region` refers to; sent back to "
    "clients of geo routes in `X-Dispa-Region`.",
    "regions[].latitude": "Latitude of the region's data centre, in degrees (-90 to 90).",
    "regions[].longitude": "Longitude of the region's data centre, in degrees (-180 to 180).",
    "regions[].continents": "Continent codes (`EU`, `NA`, `AS`, ...) this region serves "
    "first when the geo database has no coordinates (a country database).",
    "regions[].countries": "ISO country codes (`GB`, `US`, ...) this region serves first when "
    "the geo database has no coordinates; a country match ranks above a continent match.",
    "routes[].geo": "`nearest`: each client goes to the endpoints of the nearest region with "
    "an available endpoint, falling back to the next nearest; needs endpoints with a "
    "`region`. `off`: balance over all endpoints.",
    "routes[].cache": "Responses of this route may be stored in the shared cache and served "
    "from it, following RFC 9111 (Cache-Control, Expires, Vary, validators) and RFC 5861 "
    "(stale-while-revalidate, stale-if-error): on edges (their file's `cache`) and on a "
    "single gateway (this file's [`cache`](#cache)). Core nodes do not cache: they serve "
    "such a route uncached.",
    # cache: the gateway file's, and an edge's (the same section)
    "cache.memory": "Bytes of compressed stored responses held in memory. Beyond it the "
    "least recently used are evicted: to the disk tier when there is one, else dropped. "
    "A reload (single gateway) that lowers it evicts the same way; what fits stays.",
    "cache.disk_dir": "Directory of an optional disk tier, which takes what memory evicts; a "
    "response found there moves back to memory. Its index is rebuilt from the files at "
    "start. Left out, there is no disk tier. Folders are made 0700 and files 0600, whatever "
    "the umask. A reload that changes it empties the cache (the old tier's files are "
    "deleted). With `dispa run --workers N`, each worker keeps its own tier in "
    "`DIR/worker-INDEX`.",
    "cache.disk_size": "Bytes the disk tier may hold; beyond it the least recently used are "
    "removed. Used only with `disk_dir`; 0 turns the disk tier off.",
    "cache.max_entry": "Largest response stored (counted uncompressed). A larger one streams "
    "through to the client and is not stored.",
    "upstreams[].health": "Active health checks. Left out, endpoints are not probed and only "
    "outlier detection takes them out of service.",
    "upstreams[].health.path": "Path of the `GET` sent to each endpoint; must start with `/`.",
    "upstreams[].health.interval": "Pause between the end of one probe and the start of the "
    "next, per endpoint.",
    "upstreams[].health.timeout": "Time allowed for one probe: connect, send, and receive the "
    "response head. A probe that takes longer fails.",
    "upstreams[].health.healthy_threshold": "Successful probes in a row that bring an "
    "unhealthy endpoint back.",
    "upstreams[].health.unhealthy_threshold": "Failed probes in a row that take a healthy "
    "endpoint out. Endpoints start healthy.",
    "upstreams[].health.expected_status": "Inclusive range of status codes that count as a "
    "success, as `[low, high]`.",
    "upstreams[].health.host": "Host header of the probes; the endpoint's `host:port` when "
    "left out.",
    "upstreams[].outlier": "Passive outlier detection: eject endpoints that keep failing "
    "real requests.",
    "upstreams[].outlier.consecutive_5xx": "5xx responses in a row that eject an endpoint; "
    "0 turns this trigger off.",
    "upstreams[].outlier.consecutive_failures": "Connect failures, resets and response "
    "timeouts in a row that eject an endpoint; 0 turns this trigger off.",
    "upstreams[].outlier.base_ejection": "Length of a first ejection. Each new ejection "
    "lasts `base_ejection` times the number of recent ejections, up to `max_ejection`; "
    "every `base_ejection` spent back in service forgives one.",
    "upstreams[].outlier.max_ejection": "Longest ejection. Must not be shorter than "
    "`base_ejection`.",
    "upstreams[].outlier.max_ejected_percent": "Most of the pool that may be ejected at once, "
    "in percent. With the default 50, a pool of one endpoint is never ejected.",
    "upstreams[].circuit": "Circuit breaking: refuse with 503 rather than queue without "
    "bound. The limits hold per gateway process.",
    "upstreams[].circuit.max_connections": "Most connections open to the whole pool (idle "
    "and busy, dials in progress included). A request that needs a new connection "
    "beyond it gets 503 `circuit_open`.",
    "upstreams[].circuit.max_pending": "Most requests waiting for a new connection to be "
    "dialled (none idle in the pool). Beyond it, 503 `circuit_open`.",
    "upstreams[].circuit.max_requests": "Most requests in flight to the pool. Beyond it, "
    "503 `circuit_open`.",
    "upstreams[].retry": "Retries of failed tries. Only idempotent methods (GET, HEAD, "
    "OPTIONS, PUT, DELETE, TRACE) are retried, and only while the request body (if any) is "
    "at most 64 KiB and has been received in full. A retry goes to another endpoint when "
    "there is one.",
    "upstreams[].retry.attempts": "Tries in total, the first one included; 1 turns retries off.",
    "upstreams[].retry.retry_on": "What may be retried: `connect_failure` (the connection "
    "or TLS handshake failed, or an HTTP/2 upstream refused the stream), `reset` "
    "(connection lost or broken response before the head; also a try cut by "
    "`per_try_timeout`), and upstream statuses `502`, `503`, `504` (written bare or "
    "quoted). By default only the first two, failures before any answer, as nginx's "
    "`proxy_next_upstream error timeout`: a 5xx is the upstream's own answer, passed on "
    "unless listed here (see the operator guide, Retries).",
    "upstreams[].retry.per_try_timeout": "Time limit of each try, if shorter than the "
    "response timeout. A try cut by it may be retried (as `reset`); without it, a response "
    "timeout ends the request with 504.",
    "upstreams[].retry.budget_percent": "Retries in flight at once, as a share of the "
    "requests in flight to the pool, so that retries cannot pile load on an upstream in "
    "trouble.",
    "upstreams[].retry.min_retry_concurrency": "Retries always allowed at once, whatever "
    "`budget_percent` gives, so a quiet upstream can still retry.",
    "upstreams[].timeouts": "Time limits towards the endpoints.",
    "upstreams[].timeouts.connect": "TCP connect to an endpoint, TLS included. On failure: "
    "502 `upstream_connect_failure` (or a retry). With `protocol: h2`, the endpoint's "
    "SETTINGS must then come within the same time again, or 504 "
    "`upstream_h2_handshake_timeout` (or a retry).",
    "upstreams[].timeouts.response": "From the start of a try (the connection included) to "
    "the first byte of the response head. Then: 504 `upstream_timeout`. A route's `timeout` "
    "replaces it. Not for gRPC calls: see `grpc_response`.",
    "upstreams[].timeouts.idle": "Longest silence while a response body is streaming; then "
    "the client connection is cut (the status line has already been sent), or a gRPC call "
    "ends with grpc-status 4. For a gRPC call it also bounds the wait for the response "
    "head, unless `grpc_response` is set.",
    "upstreams[].timeouts.tunnel_idle": "Longest silence in both directions of a WebSocket "
    "tunnel (after `101 Switching Protocols`); then both connections are closed. Unset: "
    "`idle` applies.",
    "upstreams[].pool": "Keep-alive connections to the endpoints, reused between requests.",
    "upstreams[].pool.max_idle_per_endpoint": "Idle connections kept per endpoint; a "
    "connection freed beyond it is closed. 0 disables reuse.",
    "upstreams[].pool.idle_timeout": "An idle pooled connection older than this is closed "
    "(checked about once a second) and never reused.",
    "upstreams[].session_affinity": "Sticky sessions: a client's first request is balanced "
    "as usual and gets a cookie; later requests carrying it go to the same endpoint while it "
    "is available. On a cluster the session table is replicated, so a client keeps its "
    "endpoint through another core when its core dies. Left out, no affinity.",
    "upstreams[].session_affinity.cookie": "Name of the session cookie Dispa sets.",
    "upstreams[].session_affinity.ttl": "How long a session is remembered (also the cookie's "
    "Max-Age).",
    # global rate limits
    "rate_limits": "Global rate limits: at most `limit` requests per `window` for each key. "
    "On a single gateway the count is exact and local; on a cluster each node leases slices "
    "of the window's tokens from the replicated ledger and spends them locally, so the "
    "cluster admits at most `limit` per window while it has a quorum (a node cut off falls "
    "back to limit / cluster size). Refused requests get 429 `rate_limited` with Retry-After.",
    "rate_limits[].name": "Name of the limit, used in metrics and the ledger.",
    "rate_limits[].key": "What is counted: `source_ip`, `route`, or `header:NAME` (requests "
    "without the header share one count).",
    "rate_limits[].limit": "Requests admitted per window for each key.",
    "rate_limits[].window": "Window length; windows start at multiples of it since the epoch, "
    "the same on every node.",
    "rate_limits[].routes": "Names of the routes the limit applies to; empty means every route.",
    # routes
    "routes[].name": "Name used in metrics and the access log. Left out, the route is called "
    "`routeN`, N being its position in the file from 0.",
    "routes[].match": "Conditions a request must meet; all of them. Left out, the route "
    "matches every request.",
    "routes[].match.host": "Host (from the Host header or an absolute-form target, port "
    "and a trailing dot removed, case ignored): an exact "
    "name, `*.example.com` (any name ending in `.example.com`, not `example.com` itself), "
    "or `*` for any.",
    "routes[].match.path_prefix": "Path starts with this string (a plain string prefix: "
    "`/api` also matches `/apis`; write `/api/` to match a folder). Must start with `/`. "
    "Request paths are matched once normalised (`listeners[].paths`; "
    "[what the upstream receives](life-of-a-request.md#what-the-upstream-receives)), so "
    "this must be in normal form too: no `.` or `..` segments, no encoded unreserved "
    "characters (`%7E` is `~`), other escapes in upper case (`%C3%A9`); an error says how "
    "to write it. Case counts: `/ADMIN` is not `/admin`.",
    "routes[].match.path_exact": "Path equals this string (the query is not part of the "
    "path). Must start with `/`, in normal form (as `path_prefix`).",
    "routes[].match.path_regex": "The normalised path matches this regular expression as a "
    "whole. RE2 syntax, matched in linear time (no backreferences or lookaround: a pattern "
    "RE2 cannot run is a config error). At most one of `path_prefix`, `path_exact`, "
    "`path_regex`.",
    "routes[].match.methods": "Methods accepted (upper-cased); empty means any.",
    "routes[].match.headers": "Header conditions; every one must hold.",
    "routes[].match.headers[].name": "Header name, case ignored.",
    "routes[].match.headers[].exact": "The header's first value equals this string (case counts).",
    "routes[].match.headers[].regex": "The header's first value matches this regular "
    "expression as a whole, byte by byte. RE2 syntax, matched in linear time.",
    "routes[].match.headers[].present": "`true`: the header must be present; `false`: it "
    "must be absent. Give exactly one of `exact`, `regex`, `present`.",
    "routes[].upstream": "Name of the upstream pool that serves the route. A route has "
    "exactly one of `upstream`, `redirect`, `direct_response`.",
    "routes[].prefix_rewrite": "Replaces the matched `match.path_prefix` in the path sent "
    "upstream; the rest of the path and the query are kept. Needs `match.path_prefix`.",
    "routes[].headers": "Header edits for this route; same fields as the `headers` filter, "
    "without `type`. They run after the route's other filters of the `transform` stage.",
    "routes[].headers.type": "Need not be written here: route header edits are always of "
    "type `headers`.",
    "routes[].redirect": "Answer with a redirect instead of forwarding.",
    "routes[].redirect.status": "Redirect status.",
    "routes[].redirect.scheme": "Scheme of the new location; the request's (`http`) when left out.",
    "routes[].redirect.host": "Host of the new location; the request's Host header (port "
    "included) when left out.",
    "routes[].redirect.path": "Replaces the whole path. The query is always kept.",
    "routes[].redirect.prefix": "Replaces the matched `match.path_prefix`, keeping the rest "
    "of the path. Ignored when `path` is set or the route has no `match.path_prefix`.",
    "routes[].direct_response": "Answer from the gateway itself instead of forwarding.",
    "routes[].direct_response.status": "Status of the answer.",
    "routes[].direct_response.body": "Body of the answer, sent as given.",
    "routes[].direct_response.headers": "Headers of the answer (Content-Length is added).",
    "routes[].filters": "Filters for this route, after the top-level `filters` within a "
    "stage; inline (`type: ...`) or `use: NAME` of a `filter_definitions` entry.",
    "routes[].timeout": "Replaces the upstream's `timeouts.response` for this route, and "
    "bounds its gRPC calls' wait for a response head too (`retry.per_try_timeout` still "
    "applies when it is shorter). It also bounds a filter's wait for its answer when no "
    "other timer does (504 `filter_timeout`; without it, `timeouts.response`, or 30 s on a "
    "route without an upstream).",
    # filters: each type's rows come from its config model (dispa/config/filters/): the
    # model's docstring and its fields' descriptions, so a new type needs no entry here.
    "filters_executor": "The threads for filter work that would block the event loop "
    "(`body_replace` on bodies over 64 KiB, say). Every gateway process (each worker, each "
    "core and edge) runs its own executor of this size; a thread starts only when a job "
    "first needs one. See [Filters](filters.md#the-executor).",
    # admin and access log
    "admin.address": "Where the admin API listens, as `host:port`. Keep it on loopback or a "
    "private network: it has no authentication.",
    "access_log.enabled": "Write the access log.",
    "access_log.path": "File the log is appended to; `-` is standard output. The file is "
    "created if missing and opened on first use.",
    "access_log.buffer_bytes": "Lines are collected in memory and written in one go when "
    "this much is buffered.",
    "access_log.flush_interval": "Buffered lines are also written at least this often. 0 "
    "writes every line at once.",
}


# Service discovery (docs/discovery.md): fields every provider has, then each one's own.
_PROVIDER = "discovery.providers[type={}]"
_PROVIDER_COMMON = {
    "": "",  # the provider's own row, filled in below
    ".name": "Unique name of the provider; its pools are named `POOL@NAME`.",
    ".type": "Which provider this is.",
    ".retry": "Backoff after a failed read of the source (the last good endpoints stay).",
    ".retry.initial": "First wait before retrying; it doubles after each failure, with jitter.",
    ".retry.maximum": "Longest wait between retries.",
}
_PROVIDER_OWN = {
    "file": "Endpoints from a YAML or JSON file `{pool: [{address, weight, region}]}`, "
    "polled for changes. Replace the file atomically (write, then rename).",
    "dns": "Endpoints from DNS: A/AAAA records (re-resolved after their TTL) or SRV "
    "records (priority picks the set, weight becomes the endpoint weight).",
    "etcd": "Endpoints registered in etcd under `PREFIX/POOL/INSTANCE`, watched from the "
    "last revision; `dispa register` keeps a lease-bound registration alive.",
    "consul": "Passing instances of Consul services, followed with blocking queries.",
    "kubernetes": "Ready endpoints of Services, from their EndpointSlices, followed with a "
    "resumable watch.",
}
for _kind, _own in _PROVIDER_OWN.items():
    for _suffix, _text in _PROVIDER_COMMON.items():
        DESCRIPTIONS[_PROVIDER.format(_kind) + _suffix] = _text or _own
DESCRIPTIONS.update(
    {
        "discovery": "Providers of upstream endpoints (file, DNS, etcd, Consul, Kubernetes); "
        "see [docs/discovery.md](discovery.md).",
        "discovery.providers": "The providers. On a core cluster they run on the Raft leader "
        "only, and every change becomes a new config revision.",
        "discovery.throttle": "Shortest time between two configs made from discovered "
        "endpoints; changes in between are merged, the latest wins.",
        "upstreams[].discovery": "Take the endpoints from pool `POOL` of provider `PROVIDER` "
        "(written `POOL@PROVIDER`). `endpoints` may then be left out: the upstream answers "
        "503 until the pool has endpoints, and is never emptied by a source that fails.",
        _PROVIDER.format("file") + ".path": "The endpoints file.",
        _PROVIDER.format("file") + ".interval": "How often the file's modification time is "
        "checked.",
        _PROVIDER.format("dns") + ".server": "The DNS server as `host:port`; by default the "
        "first nameserver of /etc/resolv.conf.",
        _PROVIDER.format("dns") + ".timeout": "Longest wait for one DNS answer.",
        _PROVIDER.format("dns") + ".min_interval": "Shortest time between two resolutions, "
        "whatever the records' TTL.",
        _PROVIDER.format("dns") + ".max_interval": "Longest time between two resolutions, "
        "whatever the records' TTL.",
        _PROVIDER.format("dns") + ".pools": "The pools and the query behind each.",
        _PROVIDER.format("dns") + ".pools.NAME.query": "The name to resolve (for SRV, like "
        "`_http._tcp.api.internal`).",
        _PROVIDER.format("dns") + ".pools.NAME.record": "The record type asked for.",
        _PROVIDER.format("dns") + ".pools.NAME.port": "The endpoints' port, for A and AAAA "
        "(SRV records carry theirs).",
        _PROVIDER.format("dns") + ".pools.NAME.weight": "The weight of every address, for A "
        "and AAAA (SRV records carry theirs).",
        _PROVIDER.format("dns") + ".pools.NAME.region": "The region of the pool's endpoints.",
        _PROVIDER.format("etcd") + ".endpoints": "etcd client URLs, like `http://10.0.0.1:2379`.",
        _PROVIDER.format("etcd") + ".prefix": "The key prefix; keys are "
        "`PREFIX/POOL/INSTANCE`, values `{address, weight, region}` as JSON.",
        _PROVIDER.format("etcd") + ".timeout": "Longest wait for one etcd call.",
        _PROVIDER.format("consul") + ".address": "The Consul agent's HTTP API.",
        _PROVIDER.format("consul") + ".token_file": "A file holding the ACL token to send.",
        _PROVIDER.format("consul") + ".wait": "Seconds a blocking query may be held by "
        "Consul before it answers unchanged.",
        _PROVIDER.format("consul") + ".pools": "The pools and the service behind each.",
        _PROVIDER.format("consul") + ".pools.NAME.service": "The Consul service name.",
        _PROVIDER.format("consul") + ".pools.NAME.tag": "Only instances with this tag.",
        _PROVIDER.format("consul") + ".pools.NAME.datacenter": "The datacenter to ask; the "
        "agent's own by default.",
        _PROVIDER.format("consul") + ".pools.NAME.region": "The region of the pool's "
        "endpoints (an instance's `Meta.region` wins).",
        _PROVIDER.format("kubernetes") + ".kubeconfig": "A kubeconfig file; leave it out "
        "inside a pod to use its service account.",
        _PROVIDER.format("kubernetes") + ".context": "The kubeconfig context; its current "
        "one by default.",
        _PROVIDER.format("kubernetes") + ".watch_timeout": "Seconds one watch request may "
        "last before it is renewed from the last resourceVersion.",
        _PROVIDER.format("kubernetes") + ".pools": "The pools and the Service behind each.",
        _PROVIDER.format("kubernetes") + ".pools.NAME.service": "The Service name.",
        _PROVIDER.format("kubernetes") + ".pools.NAME.port": "The Service port's name; the "
        "slice's only port when left out.",
        _PROVIDER.format("kubernetes") + ".pools.NAME.namespace": "The namespace; the pod's "
        "own (or the kubeconfig context's) by default.",
        _PROVIDER.format("kubernetes") + ".pools.NAME.region": "The region of the pool's "
        "endpoints.",
    }
)

# ACME certificates (docs/acme.md).
DESCRIPTIONS.update(
    {
        "acme": "Certificates from an ACME server (Let's Encrypt, or any RFC 8555 CA), for a "
        "core cluster only: the Raft leader orders, every core and edge answers the HTTP-01 "
        "challenges and serves the certificate; see [docs/acme.md](acme.md). A single "
        "gateway (`dispa run`) refuses it.",
        "acme.directory": "The ACME server's directory URL, like "
        "`https://acme-v02.api.letsencrypt.org/directory`.",
        "acme.email": "The account's contact address, for the CA's expiry notices.",
        "acme.domains": "The DNS names of the one certificate, each proven by HTTP-01 "
        "(no wildcards); every name must reach a node's plaintext listener on port 80.",
        "acme.renew_before": "Renew when the certificate expires within this long (but never "
        "before a third of its lifetime has passed).",
        "acme.ca_bundle": "PEM file of the roots that the ACME server's HTTPS certificate "
        "chains to, on every core; the system's roots when left out.",
        "listeners[].tls.acme": "On cores and edges: also serve the certificate the cluster "
        "obtains by ACME (`acme`), chosen by SNI like the others; until one is issued a "
        "self-signed placeholder is served. `certificates` may then be left out.",
    }
)

# Defaults shown as words where the value alone would mislead.
DEFAULT_NOTES = {
    "routes[].headers.type": "`headers`",
}

# ------------------------------------------------------------------ node files
#
# Paths are relative to the node's own file. Listeners and admin are the gateway's own
# sections: their rows point to the gateway tables (see ``SHARED_SECTIONS``).

CORE_DESCRIPTIONS: dict[str, str] = {
    "node": "Who this core is.",
    "node.id": "The core's name, unique in the cluster. Shown by `dispa status`, used by "
    "`dispa members remove`.",
    "node.region": "Where the core runs: registered with the cluster's members and shown by "
    "`dispa status`.",
    "node.data_dir": "Where the Raft journal and snapshots are kept (created if missing). One "
    "directory per core, never shared or copied from another core. A relative path is read "
    "beside this file. Whatever the umask, the directory is made 0700 (also when "
    "it exists) and every file Dispa writes in it 0600: it holds the whole cluster state.",
    "node.secret": "The cluster secret, the same on every core: Raft traffic is encrypted and "
    "authenticated with it, and a peer without it is ignored. Looked for here first, then in "
    "`secret_file`, then in the `DISPA_CLUSTER_SECRET` environment variable; a core with "
    "none refuses to start. Written in the file, it is for local demos only.",
    "node.secret_file": "A file holding the cluster secret (surrounding whitespace is "
    "ignored), used when `secret` is not set. A file that cannot be read, or an empty one, "
    "counts as no secret: the environment variable is then not consulted.",
    "raft": "The embedded Raft the cores form. The timings must fit together: `heartbeat` "
    "under a third of `election_min`, `election_max` above `election_min`, "
    "`connection_timeout` above `election_max`; a file that breaks this is refused with the "
    "reason.",
    "raft.address": "`host:port` this core's Raft listens on, bound on that host only. It is "
    "also the core's identity in Raft: the other cores list exactly this string in their "
    "`peers`, so use an address they can reach, not `0.0.0.0`.",
    "raft.peers": "The other cores' `raft.address`, written exactly as they write it.",
    "raft.election_min": "A follower that hears nothing from the leader for a random time "
    "between `election_min` and `election_max` starts an election. Shorter means faster "
    "failover, and more needless elections on a slow network.",
    "raft.election_max": "Upper end of the random election timeout.",
    "raft.heartbeat": "How often the leader sends entries, or an empty heartbeat, to each "
    "follower.",
    "raft.connection_timeout": "A Raft connection that reads nothing for this long is taken "
    "as dead.",
    "cluster": "Where the replicated cluster state (config revisions, members, quota ledger, "
    "sessions, purges) is kept.",
    "cluster.store": "`raft`: in the cores' embedded Raft, journalled in `node.data_dir`. "
    "`etcd`: in an existing etcd v3 cluster, the cores being its clients; `node.data_dir`, "
    "`raft.address` and the cluster secret are still required, though unused.",
    "cluster.endpoints": "etcd client endpoints, as `http://host:port` or `host:port` (no TLS "
    "or authentication in this release). Required with `store: etcd`, unused otherwise.",
    "cluster.prefix": "Key prefix of this cluster's state in etcd, so that several clusters "
    "can share one etcd. Must start with `/`; a trailing `/` is dropped. Unused with "
    "`store: raft`.",
    "listeners": "This core's traffic listeners, on which it serves the shared config. They "
    "belong to the node and are not replicated.",
    "admin": "This core's admin API: `dispa apply`, `dispa status`, the edges' watch streams "
    "and quota leases go through it. The other cores and the edges call it, so in a cluster "
    "it must be an address they can reach; it has no authentication, so keep it on a "
    "private network.",
}

EDGE_DESCRIPTIONS: dict[str, str] = {
    "edge": "Who this edge is.",
    "edge.name": "The edge's name, unique among the edges. The edge reports to the cores "
    "under it and `dispa status` lists it; its rate-limit leases are taken as `edge:NAME`.",
    "edge.region": "The edge's point of presence, reported to the cores and shown by "
    "`dispa status`. Without `geo.database`, `geo: nearest` routes rank the shared "
    "config's region of this name first, then the others in their order.",
    "edge.data_dir": "Where the edge persists the last config it applied (and the last purge "
    "it received), written atomically after every change; created if missing, 0700 with a "
    "0600 file whatever the umask. A restarted "
    "edge serves that config until a core answers; with nothing persisted it answers every "
    "request with 503 until then.",
    "cores": "Admin API addresses of the cores (their `admin.address`). The edge follows the "
    "watch stream (`GET /api/v1/watch`) of one core at a time, moving to the next when that "
    "one fails, and asks them for rate-limit leases. It never needs their Raft port.",
    "listeners": "This edge's traffic listeners, on which it serves the shared config's routes.",
    "admin": "This edge's admin API (`/api/v1/node`, `/api/v1/cache`, `/api/v1/ratelimits`, "
    "metrics). Its address is reported to the cores and shown by `dispa status`.",
    "cache": "The response cache of routes with `cache: true`. Responses are stored "
    "compressed; each lives in one tier, memory or disk.",
    "geo": "Where clients are, for `geo: nearest` routes.",
    "geo.database": "A MaxMind City or Country database (`.mmdb`, GeoIP2 or GeoLite2). With "
    "a City database regions are ranked by distance; with a Country database by "
    "`regions[].countries`, then `continents`. Opened at start: when the file is missing or "
    "not a readable database the edge refuses to start (exit status 2). Left out, clients are not "
    "located and `edge.region` is ranked first.",
    "geo.trusted_proxies": "Networks (CIDR such as `10.0.0.0/8`; a bare address is one host) "
    "of the proxies in front of the edge. Only from a connection out of one of them is "
    "`X-Forwarded-For` believed when locating the client: it is read from the right, and "
    "the first address outside these networks is the client. Empty: the connection's own "
    "address is the client.",
    "rate_limits": "How this edge counts the shared config's global `rate_limits`: like a "
    "core, it leases slices of each window's tokens from the cores and spends them locally.",
    "rate_limits.fallback_share": "When no core grants leases (none reachable, or none with a "
    "quorum), the share of each global limit this edge admits alone per window (at least "
    "one request), until a lease succeeds again.",
    "follow": "How the edge follows the cores' watch stream.",
    "follow.backoff_min": "Wait before trying the next core after one fails, and the first "
    "wait after a whole round of cores has failed. Every wait is drawn at random between "
    "half and all of its value (jitter), so edges do not reconnect in step.",
    "follow.backoff_max": "The wait after a round in which every core failed doubles with "
    "each such round, from `backoff_min` up to this; it is back to `backoff_min` once a "
    "core is heard from.",
    "follow.silence_timeout": "A core that sends no frame for this long is taken as gone and "
    "the next one is followed. Cores send a heartbeat every second, so keep it well above "
    "1s.",
    "follow.report_interval": "How often the edge reports the revision it applied to the core "
    "it follows, besides right after every change; `dispa status` shows it, with its lag.",
}

# Sections of the gateway file that node files reuse as they are: not walked again there,
# their rows point to the gateway's table (at this path) instead.
SHARED_SECTIONS: dict[type[BaseModel], str] = {
    schema.Listener: "listeners[]",
    schema.Admin: "admin",
    schema.CacheSettings: "cache",
}


@dataclass
class ConfigFile:
    """One config file of the reference: its model, its descriptions, its part of the page."""

    key: str  # "gateway", "core", "edge": names the file in problems
    model: type[BaseModel]
    descriptions: dict[str, str]
    notes: dict[str, str]  # defaults shown as words, by path
    label: str = ""  # starts the file's table titles, so anchors differ between files
    shared: tuple[type[BaseModel], ...] = ()  # of SHARED_SECTIONS, reused from the gateway
    title: str = ""  # heading of the file's part of the page (the gateway's is "Fields")
    intro: str = ""
    example: str = ""


GATEWAY_FILE = ConfigFile("gateway", schema.Gateway, DESCRIPTIONS, DEFAULT_NOTES)

CORE_FILE = ConfigFile(
    "core",
    CoreConfig,
    CORE_DESCRIPTIONS,
    {},
    label="Core file: ",
    shared=tuple(SHARED_SECTIONS),
    title="Core node file",
    intro="`dispa core -c core.yaml` reads a core node's own file, once at start: who the "
    "node is, its Raft address and peers, where the cluster state is kept, and its "
    "listeners and admin address. To change it, edit it and restart the core. A bad file "
    "is refused before anything starts (exit status 2), each problem named with its path. "
    "What every node serves alike is the *shared config*, applied with `dispa apply` and "
    "replicated with revisions; it is a gateway config without `listeners`, `admin` and "
    "`cache` (cores do not cache), "
    "so its fields are those of [Fields](#fields) above.",
    example="""\
# core-1 of three cores on one machine (deploy/examples/local/core-1.yaml)
node:
  id: core-1
  region: eu
  data_dir: run/core-1
  secret: local-demo-secret-change-me   # in production: secret_file or DISPA_CLUSTER_SECRET
raft:
  address: "127.0.0.1:7001"
  peers: ["127.0.0.1:7002", "127.0.0.1:7003"]
listeners:
  - {name: public, address: "127.0.0.1:8081"}
admin: {address: "127.0.0.1:9911"}
""",
)

EDGE_FILE = ConfigFile(
    "edge",
    EdgeConfig,
    EDGE_DESCRIPTIONS,
    {},
    label="Edge file: ",
    shared=tuple(SHARED_SECTIONS),
    title="Edge node file",
    intro="`dispa edge -c edge.yaml` reads an edge node's own file, once at start: its "
    "name and region, the cores it follows, its data directory, listeners and admin "
    "address, its cache, geo database and rate-limit fallback, and how it follows the "
    "cores. What it serves (routes, upstreams, regions) is the cores' shared config, "
    "received through their watch stream (`GET /api/v1/watch`); the edge persists the last "
    "config it applied in `edge.data_dir` and serves it when no core answers. A bad file is "
    "refused before anything starts (exit status 2), each problem named with its path.",
    example="""\
# the eu edge of the local cluster (deploy/examples/local/edge-eu.yaml)
edge:
  name: edge-eu
  region: eu
  data_dir: run/edge-eu
cores: ["127.0.0.1:9911", "127.0.0.1:9912", "127.0.0.1:9913"]   # admin addresses
listeners:
  - {name: public, address: "127.0.0.1:8181"}
admin: {address: "127.0.0.1:9921"}
cache:
  memory: 64MiB
  # disk_dir: run/edge-eu-cache      # a disk tier for what memory evicts
geo:
  # Relative paths are read beside this file (deploy/examples/local/).
  database: ../../../tests/data/geoip/GeoIP2-City-Test.mmdb   # MaxMind's test City database
  trusted_proxies: ["127.0.0.0/8"]   # believe X-Forwarded-For from these peers only
rate_limits:
  fallback_share: 0.2   # no core grants leases: 20% of each limit, alone
""",
)

FILES = (GATEWAY_FILE, CORE_FILE, EDGE_FILE)

# Plain words for sections, used in "list of ...".
SECTION_WORDS = {
    schema.Listener: "listeners",
    schema.Upstream: "upstreams",
    schema.Route: "routes",
    schema.EndpointConfig: "endpoints",
    schema.HeaderMatch: "header conditions",
}

# Lists of sections told apart by `type`, by field name: (plural, singular).
UNION_WORDS = {"providers": ("providers", "provider")}

# ------------------------------------------------------------------ local replies

# reason -> (status, meaning). Every reason constant of local_reply.py must be here or in
# NOT_SENT, and the script fails otherwise.
LOCAL_REPLIES: dict[str, tuple[str, str]] = {
    "malformed_request": (
        "400",
        "The request is not valid HTTP/1.1 (bad syntax, bad Content-Length, missing or "
        "repeated Host header). The connection is closed after the reply.",
    ),
    "no_route": ("404", "No route matches the request."),
    "client_timeout": (
        "408",
        "The request head took longer than `limits.header_timeout`, or the body paused "
        "longer than `limits.body_timeout`.",
    ),
    "body_too_large": (
        "413",
        "The body is larger than `limits.max_body_bytes`, or than the limit of a filter "
        "that reads the whole request body (checked before anything reaches the upstream).",
    ),
    "request_body_too_slow": (
        "408",
        "The request body came slower than `limits.min_body_rate` bytes a second once "
        "`limits.body_rate_grace` was over (slow POST). After the response began, the "
        "connection is closed instead.",
    ),
    "client_upload_limit": (
        "429",
        "The client address already sends `limits.max_uploads_per_client` request bodies to "
        "upstreams. Carries `Retry-After: 1`.",
    ),
    "rate_limited": (
        "429",
        "A `local_rate_limit` filter's bucket is empty. Carries `Retry-After` (seconds).",
    ),
    "header_too_large": ("431", "The request head is larger than `limits.max_header_bytes`."),
    "filter_error": (
        "500",
        "A filter failed in one of its phases (or its pending work did); logged with the "
        "filter's name and the phase. The connection stays usable.",
    ),
    "filter_executor_full": (
        "503",
        "A filter's blocking work found every `filters_executor` thread busy and its queue "
        "full: refused at once rather than queued.",
    ),
    "filter_timeout": (
        "504",
        "A filter's pending work (a key fetch, a call out) was not answered within the "
        "route's `timeout` (else its upstream's `timeouts.response`, else 30 s).",
    ),
    "response_body_too_large": (
        "502",
        "A response body read whole by a filter (`body_replace`, say) was over that "
        "filter's limit; nothing of the upstream's answer was sent.",
    ),
    "internal_error": (
        "500",
        "A bug in the gateway; logged with its traceback. Please report it.",
    ),
    "unsupported_upgrade": (
        "501",
        "The client sent CONNECT (an HTTP/2 CONNECT without `:protocol websocket` too): "
        "Dispa does not tunnel. A WebSocket upgrade is forwarded; other Upgrade offers (h2c) "
        "are ignored and the request is answered as HTTP/1.1.",
    ),
    "unsupported_http_version": (
        "505",
        "The request line names an HTTP version other than 1.0 and 1.1 (`HTTP/2.0` in an "
        "HTTP/1 request line, say). The connection is closed after the reply.",
    ),
    "not_cached": (
        "504",
        "The client asked `Cache-Control: only-if-cached` on a cached route and the edge "
        "holds no usable response.",
    ),
    "upstream_connect_failure": (
        "502",
        "No connection to the endpoint: refused, unreachable, or longer than "
        "`timeouts.connect`, and no retry left.",
    ),
    "upstream_h2_handshake_timeout": (
        "504",
        "`protocol: h2`: the endpoint accepted the connection (and TLS) but sent no HTTP/2 "
        "SETTINGS within `timeouts.connect`, and no retry left. No request was sent: a "
        "connect failure for `retry`, outlier detection and the circuit breaker; gRPC "
        "clients get UNAVAILABLE. Logged as a warning naming the endpoint.",
    ),
    "upstream_reset": (
        "502",
        "The endpoint closed the connection before a complete response head, and no retry left.",
    ),
    "upstream_protocol_error": (
        "502",
        "The endpoint's response is not valid HTTP/1.1, and no retry left.",
    ),
    "no_healthy_endpoint": (
        "503",
        "Every endpoint of the upstream is unhealthy (active checks) or ejected (outlier "
        "detection).",
    ),
    "circuit_open": (
        "503",
        "The upstream's `circuit.max_requests` are in flight, or it needs a new "
        "connection and `circuit.max_connections` are open.",
    ),
    "upstream_timeout": (
        "504",
        "No response head within the response timeout (`timeouts.response`, the route's "
        "`timeout`, or `retry.per_try_timeout` on the last try); for gRPC, "
        "`timeouts.grpc_response`, else an upstream silent for `timeouts.idle`.",
    ),
    "grpc_deadline_exceeded": (
        "504",
        "gRPC: the client's `grpc-timeout` passed first. The upstream's stream is reset "
        "(CANCEL); after the response head, the reply is trailers with grpc-status 4.",
    ),
    "malformed_grpc_timeout": (
        "400",
        "gRPC: the `grpc-timeout` header is not 1 to 8 digits and a unit (H M S m u n).",
    ),
}
# gRPC names of the status codes a local reply may carry (grpc/status.py maps them).
GRPC_CODE_NAMES = {
    2: "UNKNOWN",
    4: "DEADLINE_EXCEEDED",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}
# Reasons that are not fixed-status error replies but are counted and logged the same way.
OTHER_REASONS: dict[str, tuple[str, str]] = {
    "redirect": ("3xx", "A route's `redirect` answered."),
    "direct_response": ("as configured", "A route's `direct_response` answered."),
    "fault_abort": (
        "as configured",
        "A `fault` filter aborted the request on purpose, with its `abort_status` (a gRPC "
        "request gets the grpc-status of that HTTP status). The upstream never saw it.",
    ),
}
# Defined in local_reply.py but never sent by 0.1.0.
NOT_SENT = {local_reply.SHUTTING_DOWN}

# ------------------------------------------------------------------ balancing policies

POLICY_ROWS: dict[str, tuple[str, str]] = {
    "round_robin": (
        "Each available endpoint in turn. The starting point is random each time the set "
        "of available endpoints changes.",
        "ignored",
    ),
    "weighted_round_robin": (
        "Smooth weighted round robin (nginx's): heavy endpoints are spread out, not served "
        "in bursts. Weights 5, 1, 1 give a a b a c a a.",
        "yes",
    ),
    "random": ("Each pick independent and random, in proportion to weight.", "yes"),
    "least_request": (
        "Two distinct endpoints drawn at random; the one with fewer requests in flight per "
        "unit of weight wins. In-flight counts are per gateway process.",
        "in the comparison",
    ),
    "p2c_ewma": (
        "Two distinct endpoints drawn at random; the cheaper wins, cost being average "
        "latency x (requests in flight + 1) / weight. In 0.1.0 the gateway does not yet "
        "record response latencies, so every cost is 0 and this acts as a uniform random "
        "choice.",
        "in the cost",
    ),
    "ring_hash": (
        "Consistent hash ring (Ketama style, 160 points per unit of weight, 16384 at "
        "most) over the key from `hash.key`: a key keeps its endpoint while the pool "
        "changes around it. Bounded load (on by default, 1.25) moves a busy endpoint's "
        "extra requests to the next endpoint on the ring.",
        "yes",
    ),
    "maglev": (
        "Maglev lookup table (65537 slots) over the key from `hash.key`: even shares, fast "
        "picks, a little more key movement than the ring when the pool changes. Bounded "
        "load as for `ring_hash`. The table is rebuilt whenever the set of available "
        "endpoints changes, which takes a noticeable moment in Python.",
        "yes",
    ),
}

# ------------------------------------------------------------------ walking the schema


@dataclass
class Row:
    path: str
    type: str
    default: str
    description: str
    reused: bool = False  # a section of the gateway file's, pointed to rather than repeated


@dataclass
class Section:
    """One table of the reference: the fields of one section."""

    path: str  # "" for the top level
    title: str
    rows: list[Row]
    model: type[BaseModel] | None = None


class SchemaError(Exception):
    """The schema has something this script does not know how to describe."""


def _unwrap_optional(annotation):
    """(annotation without None, whether None was allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _split_annotated(annotation) -> tuple[object, list]:
    metadata: list = []
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], [*metadata, *args[1:]]
    return annotation, metadata


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_models(annotation, metadata) -> list[tuple[str, type[BaseModel]]] | None:
    """The members of a discriminated union of models as (tag, model), or None. A member
    is selected by its ``type`` value, or by its ``Tag`` (``use`` for a filter reference)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    members = []
    for member in typing.get_args(annotation):
        model, member_metadata = _split_annotated(member)
        if not _is_model(model):
            return None
        tags = [m.tag for m in member_metadata if isinstance(m, Tag)]
        members.append((tags[0] if tags else _discriminator_value(model), model))
    discriminated = any(
        isinstance(m, Discriminator) or (isinstance(m, FieldInfo) and m.discriminator)
        for m in metadata
    )
    if not discriminated:
        raise SchemaError(f"a union of sections without a discriminator: {annotation}")
    return members


def _discriminator_value(model: type[BaseModel], field: str = "type") -> str:
    (value,) = typing.get_args(model.model_fields[field].annotation)
    return value


def _union_children(members, path: str, file: ConfigFile, singular: str, child) -> list:
    """The tables of each member of a union at ``path``: ``path[type=NAME]`` for a type,
    ``path[use]`` for the reference form."""
    children = []
    for tag, member in members:
        member_path = f"{path}[use]" if tag == "use" else f"{path}[type={tag}]"
        walked = child(member, member_path)
        walked[0].rows.insert(0, _union_member_row(member_path, file, singular, member))
        if tag != "use":
            _describe_type_row(walked[0], member_path, tag, singular)
        children += walked
    return children


def _describe_type_row(section: Section, member_path: str, tag: str, singular: str) -> None:
    for row in section.rows:
        if row.path == f"{member_path}.type" and not row.description:
            row.description = f"`{tag}` selects this {singular}."


def _scalar_kind(annotation, metadata) -> str:
    validators = [m.func for m in metadata if isinstance(m, BeforeValidator | AfterValidator)]
    if units.parse_duration in validators:
        return "duration"
    if units.parse_size in validators:
        return "size"
    if schema._check_address in validators:
        return "address"
    if any(getattr(m, "pattern", None) == schema._NAME for m in metadata):
        return "name"
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(annotation))
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer" + _range(metadata)
    if annotation is float:
        return "number" + _range(metadata)
    if annotation is str:
        return "string"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and args == (str, str):
        return "map of string to string"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return "list of " + _plural(_scalar_kind(*_split_annotated(args[0])))
    if origin is tuple and args and Ellipsis not in args:
        kinds = {_scalar_kind(*_split_annotated(a)) for a in args}
        if kinds == {"integer"} and len(args) == 2:
            return "pair of integers"
    raise SchemaError(f"no plain-words type for {annotation!r}")


def _plural(kind: str) -> str:
    plurals = {
        "string": "strings",
        "integer": "integers",
        "number": "numbers",
        "address": "addresses",
    }
    return plurals.get(kind, kind)


def _range(metadata) -> str:
    low = high = None
    above = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            above = item.gt
        elif isinstance(item, annotated_types.Le):
            high = item.le
    if low is not None and high is not None:
        return f", {low} to {high}"
    if low is not None:
        return f", at least {low}"
    if above is not None and high is not None:
        return f", above {above} and at most {high}"
    if above is not None:
        return f", above {above}"
    if high is not None:
        return f", at most {high}"
    return ""


def _min_length(metadata) -> int:
    for item in metadata:
        if isinstance(item, annotated_types.MinLen):
            return item.min_length
    return 0


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_/][A-Za-z0-9_.:/-]*", value) and value not in (
            "on",
            "off",
            "yes",
            "no",
            "null",
            "true",
            "false",
        )
        return value if plain else f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_default(field: FieldInfo, kind: str) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "see below"
    if kind.startswith("duration"):
        return f"`{format_duration(value)}`"
    if kind.startswith("size"):
        return f"`{format_size(value)}`"
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(_yaml_scalar(v) for v in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in value.items()) + "}`"
    return f"`{_yaml_scalar(value)}`"


def walk(
    model: type[BaseModel],
    prefix: str = "",
    title: str | None = None,
    file: ConfigFile | None = None,
) -> list[Section]:
    """The sections of ``model``, depth first, each with one row per field.

    ``file`` gives the descriptions and the table titles (the gateway file by default).
    """
    file = file or GATEWAY_FILE
    if title is None:
        title = f"{file.label}top level" if file.label else "Top level"
    section = Section(prefix, title, [], model)
    children: list[Section] = []

    def child(section_model: type[BaseModel], path: str) -> list[Section]:
        return walk(section_model, path, f"{file.label}`{path}`", file)

    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        annotation, optional = _unwrap_optional(field.annotation)
        annotation, inner_metadata = _split_annotated(annotation)
        metadata = [*field.metadata, *inner_metadata]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        at_least = _min_length(metadata)
        suffix = ", at least one" if at_least == 1 else ""
        reused = None  # the gateway section this field reuses as it is
        if _is_model(annotation):
            kind = "section" + (", optional" if optional else "")
            if annotation in file.shared:
                reused = SHARED_SECTIONS[annotation]
            else:
                children += child(annotation, path)
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item, item_metadata = _split_annotated(args[0])
            members = _union_models(item, item_metadata)
            if _is_model(item):
                kind = f"list of {SECTION_WORDS.get(item, 'sections')}{suffix}"
                if item in file.shared:
                    reused = SHARED_SECTIONS[item]
                else:
                    children += child(item, f"{path}[]")
            elif members is not None:
                plural, singular = UNION_WORDS.get(path.rpartition(".")[2], ("filters", "filter"))
                kind = f"list of {plural}, each chosen by its `type`" + suffix
                if any(tag == "use" for tag, _ in members):
                    kind += " (or `use`)"
                children += _union_children(members, path, file, singular, child)
            else:
                kind = _scalar_kind(annotation, metadata) + suffix
        elif origin is dict and len(args) == 2 and _union_models(*_split_annotated(args[1])):
            # Named filters: a map of names to members of the filter union.
            members = _union_models(*_split_annotated(args[1]))
            kind = "map of names to filters, each chosen by its `type`"
            children += _union_children(members, f"{path}.NAME", file, "filter", child)
        elif origin is dict and len(args) == 2 and _is_model(args[1]):
            # Sections keyed by a name the operator chooses (a provider's pools).
            kind = f"map of names to {SECTION_WORDS.get(args[1], 'sections')}{suffix}"
            children += child(args[1], f"{path}.NAME")
        else:
            kind = _scalar_kind(annotation, metadata)
            if optional:
                kind += " or null"
        default = file.notes.get(path) or format_default(field, kind)
        description = describe(path, field, file)
        if reused is not None:
            link = f"[`{reused}`]({_anchor(f'`{reused}`')})"
            if default == "see below":
                default = f"as in {link}"
            if description:  # an undescribed field must still be reported
                description += f" Same fields as the gateway file's {link}."
        section.rows.append(Row(path, kind, default, description, reused is not None))
    return [section, *children]


def _union_member_row(
    path: str, file: ConfigFile, word: str = "filter", model: type[BaseModel] | None = None
) -> Row:
    description = describe(path, None, file)
    # A filter type documents itself: its config model's docstring.
    if not description and model is not None and model.__doc__ and _documents_itself(model):
        description = " ".join(model.__doc__.split())
    return Row(path, word, "-", description)


def _documents_itself(model: type[BaseModel]) -> bool:
    return model.__module__.startswith("dispa.config.filters") or model is schema.FilterReference


def describe(path: str, field: FieldInfo | None, file: ConfigFile | None = None) -> str:
    parts = [(file or GATEWAY_FILE).descriptions.get(path, "")]
    if field is not None and field.description:
        parts.append(field.description.rstrip(".") + ".")
    return " ".join(p for p in parts if p).strip()


def all_rows(sections: list[Section]) -> list[Row]:
    return [row for section in sections for row in section.rows]


def problems(sections: list[Section], file: ConfigFile | None = None) -> list[str]:
    """Fields without a description, descriptions of fields that do not exist, and (for
    the gateway file) reasons or policies that the tables do not cover."""
    file = file or GATEWAY_FILE
    rows = all_rows(sections)
    found = []
    found += [f"no description for {row.path}" for row in rows if not row.description]
    known = {row.path for row in rows}
    found += [
        f"description of unknown field {path}" for path in file.descriptions if path not in known
    ]
    found += [f"default note for unknown field {path}" for path in file.notes if path not in known]
    if file.example:
        try:
            file.model.model_validate(yaml.safe_load(file.example))
        except ValidationError as error:
            found.append(f"the example does not validate: {error}")
    if file is not GATEWAY_FILE:
        return found
    reasons = {
        value
        for name, value in vars(local_reply).items()
        if name.isupper() and isinstance(value, str)
    }
    covered = set(LOCAL_REPLIES) | set(OTHER_REASONS) | NOT_SENT
    found += [f"local reply reason {r} is not in the table" for r in sorted(reasons - covered)]
    found += [f"no balancing row for policy {p}" for p in POLICIES if p not in POLICY_ROWS]
    found += [f"balancing row for unknown policy {p}" for p in POLICY_ROWS if p not in POLICIES]
    return found


# ------------------------------------------------------------------ rendering


def _anchor(title: str) -> str:
    text = re.sub(r"[^a-z0-9 _-]", "", title.lower())
    return "#" + text.replace(" ", "-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _units_section() -> list[str]:
    lines = [
        "## Units",
        "",
        "**Durations** are a number and a unit, or a bare number of seconds:",
        "",
        "| unit | meaning |",
        "|:---|:---|",
    ]
    for unit, seconds in units._DURATION_SECONDS.items():
        lines.append(f"| `{unit}` | {seconds:g} s |")
    lines += [
        "",
        "For example `250ms`, `1.5s`, `5m`, `1h`, or `30` (thirty seconds). Durations "
        "cannot be negative.",
        "",
        "**Sizes** are a whole number of bytes, with an optional unit:",
        "",
        "| unit | bytes |",
        "|:---|:---|",
    ]
    for unit, factor in units._SIZE_BYTES.items():
        if unit is None:
            continue
        lines.append(f"| `{unit}` | {factor:,} |")
    lines += [
        "",
        "For example `8192`, `64KiB`, `10MiB`, `1GB`. `k`, `K`, `M` and `G` are powers of "
        "1024, like `KiB`; `KB`, `MB` and `GB` are powers of 1000. No space is needed "
        "between the number and the unit.",
        "",
        "**Addresses** are `host:port`, such as `127.0.0.1:8080`, `0.0.0.0:80` or "
        "`[::1]:8080`. **Names** (of listeners, upstreams, routes) start with a letter or a "
        "digit and go on with letters, digits, `_`, `.` and `-`.",
        "",
    ]
    return lines


def _routing_section() -> list[str]:
    doc = router.__doc__ or ""
    steps = re.findall(r"^(\d)\. (.+?)(?=^\d\. |^The first|\Z)", doc, re.M | re.S)
    tail = re.search(r"^(The first route.+)\Z", doc, re.M | re.S)
    lines = [
        "## Routing precedence",
        "",
        "Routes are not tried in file order. From `dispa/proxy/router.py`, most specific first:",
        "",
    ]
    for number, text in steps:
        lines.append(f"{number}. " + " ".join(text.split()).replace("``", "`"))
    if tail:
        lines += ["", " ".join(tail.group(1).split()).replace("``", "`")]
    lines += [
        "",
        "In plain words: the gateway first looks at routes written for the request's exact "
        "host, then at `*.suffix` routes (the longest suffix first), then at `*` routes. "
        "Within each group it prefers an exact path over a prefix, a longer prefix over a "
        "shorter one, a prefix over a regular expression, and any path condition over none. "
        "When two routes are equal on all that, the one with more conditions (a method list "
        "counts as one, each header condition as one) goes first, and then the one written "
        "first. The first route in that order whose conditions all hold serves the request; "
        "if none does, the answer is 404 `no_route`.",
        "",
        "For example, with routes for `api.example.com` + `/v1/`, `*.example.com` + `/`, "
        "and `*` + `/`: `api.example.com/v1/users` takes the first, `api.example.com/v2` "
        "falls through to the second, and `other.org/v1/` takes the third.",
        "",
        "The host is taken from the request target when it is in absolute form "
        "(`GET http://host/path`), else from the Host header; it is lower-cased and loses "
        "its port. An HTTP/1.1 request without a Host header, or with two, is refused with "
        "400; an HTTP/1.0 request without one only matches `*` routes.",
        "",
    ]
    return lines


def _local_replies_section() -> list[str]:
    lines = [
        "## Local replies",
        "",
        "When the gateway answers a request itself, the body is the reason in plain words "
        "(`no route`, `upstream timeout`) as `text/plain`, never a stack trace. The reason "
        "is written to the access log (`reason`) and counted in the metric "
        "`dispa_local_replies_total{reason=...}`.",
        "",
        "| status | reason | meaning |",
        "|:---|:---|:---|",
    ]
    for reason, (status, meaning) in sorted(LOCAL_REPLIES.items(), key=lambda i: i[1][0]):
        lines.append(f"| {status} | `{reason}` | {_cell(meaning)} |")
    for reason, (status, meaning) in OTHER_REASONS.items():
        lines.append(f"| {status} | `{reason}` | {_cell(meaning)} |")
    lines += [
        "",
        "**gRPC.** When the request is gRPC (`content-type: application/grpc...`), the same "
        "replies go out as gRPC errors: HTTP status 200, `content-type: application/grpc`, "
        "and a trailers-only response (over HTTP/2 one HEADERS frame with END_STREAM) "
        "carrying `grpc-status` and `grpc-message` (the reason in plain words, "
        "percent-encoded). The access log and metrics keep the HTTP status and the reason. "
        "See [gRPC through Dispa](grpc.md).",
        "",
        "| reason | grpc-status |",
        "|:---|:---|",
    ]
    for reason, (status, _) in sorted(LOCAL_REPLIES.items(), key=lambda i: i[1][0]):
        code = grpc_status_for(int(status), reason)
        lines.append(f"| `{reason}` | {code} {GRPC_CODE_NAMES[code]} |")
    lines += [
        "",
        "When a failure happens after the response head has been sent to the client "
        "(the endpoint resets mid-body, sends a broken body, or stays silent longer than "
        "`timeouts.idle`), no reply is possible (but gRPC's, which ends with trailers "
        "carrying grpc-status 4 after an idle timeout): the client connection is cut, and the "
        "access log line carries `upstream_reset`, `upstream_protocol_error` or "
        "`upstream_timeout`. A client that goes away before its answer is logged with "
        "status 499 and reason `client_disconnected`.",
        "",
        "A WebSocket tunnel is logged with status 101 when it ends, and its reason says who "
        "ended it: `client_closed` (the client sent the first Close frame), "
        "`upstream_closed` (the upstream did), `client_disconnected` (the client's "
        "connection, or HTTP/2 stream, ended with no Close frame either way), "
        "`upstream_reset` (the upstream's connection ended with no Close frame: it died "
        "mid-session), `tunnel_idle_timeout` (no byte either way for `timeouts.tunnel_idle`), "
        "`shutting_down` (still open when the gateway's drain ended) or "
        "`upstream_protocol_error` (an HTTP/2 client's upstream answered the handshake "
        "wrongly). The first Close frame decides, not which connection closed first: after "
        "the close handshake the server hangs up first (RFC 6455 7.1.1), whoever began it.",
        "",
    ]
    return lines


def _policies_section() -> list[str]:
    lines = [
        "## Balancing policies",
        "",
        "Set per upstream with `lb`. Every policy chooses among the *available* endpoints: "
        "healthy by the active checks (when `health` is set) and not ejected by outlier "
        "detection. When none is available the answer is 503 `no_healthy_endpoint`.",
        "",
        "| policy | how it picks | weights | key |",
        "|:---|:---|:---|:---|",
    ]
    for policy in POLICIES:
        how, weights = POLICY_ROWS[policy]
        key = "`hash.key`" if policy in ("ring_hash", "maglev") else "-"
        lines.append(f"| `{policy}` | {_cell(how)} | {weights} | {key} |")
    lines.append("")
    return lines


def _tables(sections: list[Section]) -> list[str]:
    def link(section: Section) -> str:
        text = f"`{section.path}`" if section.path else "top level"
        return f"[{text}]({_anchor(section.title)})"

    lines = ["Sections: " + ", ".join(link(s) for s in sections), ""]
    for section in sections:
        lines += [f"### {section.title}", ""]
        lines += ["| field | type | default | description |", "|:---|:---|:---|:---|"]
        for row in section.rows:
            lines.append(
                f"| `{row.path}` | {_cell(row.type)} | {_cell(row.default)} "
                f"| {_cell(row.description)} |"
            )
        lines.append("")
    return lines


def _node_file_part(file: ConfigFile, sections: list[Section]) -> list[str]:
    lines = [f"## {file.title}", "", file.intro, ""]
    lines += ["```yaml", *file.example.rstrip("\n").splitlines(), "```", ""]
    reused = [row.path for row in sections[0].rows if row.reused]
    names = ", ".join(f"`{path}`" for path in reused[:-1]) + f" and `{reused[-1]}`"
    lines += [
        f"Paths in these tables are relative to this file. Rows for {names} point to the "
        "gateway's tables: the sections are the same.",
        "",
    ]
    return lines + _tables(sections)


def render(parts: list[tuple[ConfigFile, list[Section]]]) -> str:
    gateway_sections = next(sections for file, sections in parts if file is GATEWAY_FILE)
    node_parts = [(file, sections) for file, sections in parts if file is not GATEWAY_FILE]
    lines = [
        "# Config reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from dispa/config/schema.py, "
        "cluster.py and edge.py. Do not edit by hand: change the schema or the script, then "
        "run `python docs/gen_config_reference.py`. -->",
        "",
        "A gateway config is one YAML file (JSON works too, being YAML). Check it with "
        "`dispa validate -c FILE` before you run or reload it: every problem is reported "
        "at once, each with the path of the field, such as `routes[2].upstream: unknown "
        "upstream 'ap'`. Unknown fields are errors, so a misspelt setting is never "
        "silently ignored.",
        "",
        "Paths in this page: `a.b` is field `b` of section `a`; `a[]` is each entry of "
        "list `a`; `filters[type=headers]` is an entry of `filters` whose `type` is "
        "`headers`. A default of *see below* means the section is present with all its "
        "own defaults; *none* means the setting is off or absent unless written.",
        "",
        "**Files named in a config file.** A relative path (a certificate, key or CA, "
        "the access log, a cache or data directory, the geo database, a discovery file, a "
        "secret or token file) is read beside the config file that names it, whatever "
        "folder Dispa was started from: with `/etc/dispa/gateway.yaml`, `certs/site.pem` is "
        "`/etc/dispa/certs/site.pem`. Absolute paths are used as written; `~` is not "
        "expanded. A config sent as text to a core's admin API (`dispa apply`, "
        "`PUT /api/v1/config`) has no folder: a relative path there is refused, naming the "
        "field, so write the absolute path of the file on the nodes. (Revisions stored "
        "before this rule keep their relative paths, read from each node's working "
        "directory.)",
        "",
        "The nodes of a cluster also read a file of their own: see "
        + " and ".join(f"[{file.title}]({_anchor(file.title)})" for file, _ in node_parts)
        + " at the end of this page.",
        "",
        "Contents: [Units](#units), [Routing precedence](#routing-precedence), "
        "[Local replies](#local-replies), [Balancing policies](#balancing-policies), "
        "[Fields](#fields)"
        + "".join(f", [{file.title}]({_anchor(file.title)})" for file, _ in node_parts)
        + ".",
        "",
    ]
    lines += _units_section()
    lines += _routing_section()
    lines += _local_replies_section()
    lines += _policies_section()
    lines += ["## Fields", ""]
    lines += _tables(gateway_sections)
    for file, sections in node_parts:
        lines += _node_file_part(file, sections)
    return "\n".join(lines)


def file_problems(walked: dict[str, list[Section]]) -> list[str]:
    """What ties the files together: reused sections are covered by the gateway's tables,
    and the shared config is the gateway config without listeners and admin."""
    gateway = {section.path: section.model for section in walked[GATEWAY_FILE.key]}
    found = []
    for model, path in SHARED_SECTIONS.items():
        if gateway.get(path) is not model:
            found.append(f"the gateway file has no `{path}` section of {model.__name__}")
    # Each node's own, never replicated.
    node_only = {"listeners", "admin", "cache", "filters_executor"}
    gateway_fields = set(schema.Gateway.model_fields) - node_only
    if set(SharedConfig.model_fields) != gateway_fields:
        found.append(
            "SharedConfig is no longer the gateway config without listeners, admin and "
            "cache; fix the core file's intro"
        )
    return found


def build() -> tuple[str, list[str]]:
    """The page, and every problem of every file (each but the gateway's named by file)."""
    walked = {file.key: walk(file.model, file=file) for file in FILES}
    found = []
    for file in FILES:
        named = "" if file is GATEWAY_FILE else f"{file.key} file: "
        found += [named + problem for problem in problems(walked[file.key], file)]
    found += file_problems(walked)
    return render([(file, walked[file.key]) for file in FILES]), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the reference is out of date"
    )
    args = parser.parse_args(argv)
    text, found = build()
    if found:
        print("the config reference cannot be generated:", file=sys.stderr)
        for problem in found:
            print(f"  {problem}", file=sys.stderr)
        print("describe them in docs/gen_config_reference.py", file=sys.stderr)
        return 1
    relative = OUTPUT.relative_to(ROOT)
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(
                f"{relative} is out of date; run: python docs/gen_config_reference.py",
                file=sys.stderr,
            )
            return 1
        print(f"{relative} is up to date")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
