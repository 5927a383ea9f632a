"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.settings import get_settings


@pytest.fixture
def fresh_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    """The CLI on a fresh machine: empty working directory, no .env, no model or LangSmith key configured."""
    monkeypatch.chdir(tmp_path)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL", "BUSINESS_CONFIG", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
