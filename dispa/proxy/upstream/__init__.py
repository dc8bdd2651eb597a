"""Upstreams at run time: pools, endpoints, connections, TLS, health, outlier, circuit."""
