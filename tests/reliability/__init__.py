"""Reliability and security suite: real faults and hostile input against the real local stack.

`make reliability` runs all of it and writes RELIABILITY.md; `make test` runs the CI-sized part
(tests not marked full-only). See tests/reliability/conftest.py.
"""
