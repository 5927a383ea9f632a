"""The webhook spool outlives the container: compose mounts a named volume where the image's default SPOOL_DIR
resolves, and the image creates that directory for its non-root user (a new named volume copies its owner)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_keeps_its_spool_on_a_named_volume_at_the_default_spool_dir() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    workdir = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("WORKDIR")][-1]
    spool = PurePosixPath(workdir) / Settings.model_fields["spool_dir"].default
    assert str(spool) == "/app/data/spool"
    assert f"mkdir -p {spool}" in dockerfile

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = [m for m in compose["services"]["app"]["volumes"] if isinstance(m, dict) and m["type"] == "volume"]
    assert [(m["source"], m["target"]) for m in mounts] == [("spool", str(spool))]
    assert "spool" in compose["volumes"]
    # The app still gets business.yaml: its own volume list replaces the shared one, it does not extend it.
    assert any(m.get("target") == "/app/business.yaml" for m in compose["services"]["app"]["volumes"])
