"""Cluster integration tests (a package, so that this directory's conftest is imported
as cluster.conftest and does not replace the parent conftest that sibling tests import
with `from conftest import ...`)."""
