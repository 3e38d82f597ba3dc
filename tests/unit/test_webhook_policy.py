"""The webhook address policy, pure: what the API refuses from the URL alone."""

from __future__ import annotations

import ipaddress

import pytest

from domain.webhook_policy import address_refusal, parse_target, static_refusal

LISTED = frozenset({"127.0.0.1:9000", "hooks.internal:8080", "[::1]:9000"})


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://93.184.216.34/x",
        "http://127.0.0.1:9000/x",  # listed: loopback and plain http allowed
        "http://hooks.internal:8080/x",  # listed by name: its addresses are checked at call time
        "http://[::1]:9000/x",
    ],
)
def test_accepted(url: str) -> None:
    assert static_refusal(url, LISTED) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://hooks.example.com/x", "must use https"),
        ("https://127.0.0.1:9001/x", "a loopback address"),
        ("https://127.0.0.1/x", "a loopback address"),
        ("https://localhost:9000/x", "a loopback address"),
        ("https://10.1.2.3/x", "a private or reserved address"),
        ("https://100.64.0.1/x", "a private or reserved address"),
        ("https://169.254.169.254/x", "a cloud metadata address (always refused)"),
        ("https://[::ffff:a9fe:a9fe]/x", "a cloud metadata address (always refused)"),
        ("https://169.254.1.1/x", "a link-local address (always refused)"),
        ("https://224.0.0.1/x", "not a unicast address"),
        ("https://u:p@hooks.example.com/x", "must not carry credentials"),
        ("gopher://hooks.example.com/x", "must be an http:// or https:// URL"),
        ("https:///x", "has no host"),
        ("https://hooks.example.com:99999/x", "is not a valid URL"),
    ],
)
def test_refused(url: str, fragment: str) -> None:
    refusal = static_refusal(url, LISTED)
    assert refusal is not None
    assert fragment in refusal, refusal


def test_metadata_is_refused_even_when_listed() -> None:
    target = parse_target("http://169.254.169.254:80/")
    address = ipaddress.ip_address("169.254.169.254")
    assert address_refusal(address, target, frozenset({"169.254.169.254:80"})) is not None
