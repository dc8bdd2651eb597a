"""Service discovery: providers that find upstream endpoints, and the watcher that merges them.

A provider (file, DNS, etcd, Consul, Kubernetes) emits its whole current view,
``{pool: [DiscoveredEndpoint]}``, whenever it changes. The ``DiscoveryWatcher`` names each pool
``pool@provider``, merges every provider's view, drops a result equal to the current one,
throttles bursts, and hands the merged view to its ``on_change`` callback; ``apply_discovered``
fills the endpoints of the upstreams bound to those pools into a config. ``local.py`` serves
that on ``dispa run``; ``leader.py`` runs the providers on a core cluster's Raft leader and
commits each change as a config revision. Their config is ``dispa/config/discovery.py``.
"""
