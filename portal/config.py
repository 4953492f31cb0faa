"""Configuration read from environment variables, with overrides for tests."""

import os
import secrets
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _secret_key(instance_path: Path) -> str:
    """Use SECRET_KEY, or a random key kept in the instance folder across restarts."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env

    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def from_environment(instance_path: Path) -> dict[str, Any]:
    default_db = f"sqlite:///{instance_path / 'portal.db'}"
    return {
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL", default_db),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "portal"),
        "SPATIALITE_LIBRARY_PATH": os.environ.get(
            "SPATIALITE_LIBRARY_PATH", "mod_spatialite"
        ),
        "DEMO_PASSWORD": os.environ.get("DEMO_PASSWORD", "demo-portal-2026"),
        # A running run is stamped this often; silent this long, it is failed.
        "RUN_HEARTBEAT_SECONDS": float(os.environ.get("RUN_HEARTBEAT_SECONDS", "10")),
        "RUN_STALE_SECONDS": int(os.environ.get("RUN_STALE_SECONDS", "120")),
        "ACCOUNTS_PER_PAGE": 50,
        # Shown before amounts (sales, thresholds, potential); one currency per portal.
        "CURRENCY_SYMBOL": os.environ.get("CURRENCY_SYMBOL", "$"),
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
