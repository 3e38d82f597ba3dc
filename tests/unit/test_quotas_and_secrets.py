"""Quotas (rows, bytes, frozen columns) and the fail-closed secrets, pure."""

from __future__ import annotations

import pytest

from domain.formats.flatten import freeze_columns
from domain.quotas import ExportQuotas, QuotaExceeded
from domain.settings import DEVELOPMENT_SECRET, InsecureSecretsError, Settings

SECURE = Settings(api_jwt_secret="s" * 32, webhook_signing_secret="w" * 32, development_mode=False)


def test_totals_over_a_quota_are_refused_with_the_setting_named() -> None:
    quotas = ExportQuotas.of(Settings(export_max_rows=10, export_max_bytes=100))
    quotas.check_totals(10, 100)
    with pytest.raises(QuotaExceeded, match="EXPORT_MAX_ROWS"):
        quotas.check_totals(11, 1)
    with pytest.raises(QuotaExceeded, match="EXPORT_MAX_BYTES"):
        quotas.check_totals(1, 101)


def test_zero_turns_a_quota_off() -> None:
    quotas = ExportQuotas.of(Settings(export_max_rows=0, export_max_bytes=0))
    assert (quotas.max_rows, quotas.max_bytes) == (None, None)
    quotas.check_totals(10**12, 10**15)


def test_the_column_cap_stops_freezing_early() -> None:
    row = {f"f{i}": {"x": i, "y": i} for i in range(100_000)}
    with pytest.raises(QuotaExceeded, match="more than 5 distinct fields"):
        freeze_columns([row], max_columns=5)
    assert len(freeze_columns([{"a": 1, "b": {"c": 2}}], max_columns=2)) == 2


@pytest.mark.parametrize("name", ["api_jwt_secret", "webhook_signing_secret"])
def test_the_development_secret_is_refused_outside_development_mode(name: str) -> None:
    settings = SECURE.model_copy(update={name: DEVELOPMENT_SECRET})
    with pytest.raises(InsecureSecretsError, match=name.upper()):
        settings.require_secure_secrets()
    settings.model_copy(update={"development_mode": True}).require_secure_secrets()
    SECURE.require_secure_secrets()
