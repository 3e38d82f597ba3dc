"""Installs and runs the local service stack that tests and the demo use.

Every server is a real one, bound to 127.0.0.1: the Temporal dev server, FerretDB (SQLite backend),
mongo-java-server (in-memory, for the aggregation stages FerretDB lacks) and versitygw (S3 on a
POSIX directory). Built binaries are cached under `~/.cache/durable-export/` (override with
`DURABLE_EXPORT_CACHE`); state, logs and pids live under `.devstack/` in the checkout.
"""
