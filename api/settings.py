"""API settings: the shared ones (database, collections) plus auth, CORS, Redis and Prefect."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from flows.deployments import ON_DEMAND
from flows.settings import Settings


class ConfigurationError(RuntimeError):
    """The API cannot start as configured; the message says what to set."""


class ApiSettings(Settings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # `development` allows a generated local JWT secret (nothing else: the dev routes are their own switch).
    ledger_env: str = "production"
    # `/api/dev/token` mints a token for ANY vendor without authentication (and `/api/dev/vendors` lists them):
    # for the demo only, so it needs this explicit switch (`ledger-sync up --dev`) on top of development.
    ledger_dev_routes: bool = False
    ledger_jwt_secret: str | None = None
    # Tokens issued by `ledger-sync token` / the dev route live this long.
    ledger_token_ttl_seconds: int = 8 * 3600
    redis_url: str | None = None
    # Every API process looks for runs whose heartbeat stopped this often (one indexed query) and
    # marks them crashed, so a dead sync is reported even if nobody triggers that vendor again.
    # 0 turns the periodic check off (the check on trigger and the events bridge remain).
    ledger_stale_check_seconds: float = 15.0
    # Comma-separated origins allowed to call the API and open a socket from another origin ("*" for any).
    ledger_cors_origins: str = ""
    prefect_deployment: str = Field(default=ON_DEMAND,
                                    validation_alias=AliasChoices("prefect_deployment", "LEDGER_PREFECT_DEPLOYMENT",
                                                                     "PREFECT_DEPLOYMENT"))
    prefect_api_url: str | None = Field(default=None,
                                        validation_alias=AliasChoices("prefect_api_url", "PREFECT_API_URL"))

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.ledger_cors_origins.split(",") if origin.strip()]

    @property
    def is_development(self) -> bool:
        return self.ledger_env.strip().lower() in ("development", "dev")

    @property
    def dev_routes(self) -> bool:
        """Whether the unauthenticated development routes are served; refuses them outside development."""
        if self.ledger_dev_routes and not self.is_development:
            raise ConfigurationError(
                "LEDGER_DEV_ROUTES=true needs LEDGER_ENV=development: /api/dev/token hands out a token for any "
                "vendor without authentication. Unset LEDGER_DEV_ROUTES (or use `ledger-sync up --dev` locally).")
        return self.ledger_dev_routes

    @property
    def jwt_secret_file(self) -> Path:
        return self.ledger_home / "jwt-secret"

    def resolve_jwt_secret(self) -> str:
        """`LEDGER_JWT_SECRET`; in development a random one kept in `<LEDGER_HOME>/jwt-secret`; else refuse."""
        if self.ledger_jwt_secret:
            if len(self.ledger_jwt_secret) < 32:
                raise ConfigurationError("LEDGER_JWT_SECRET is too short: use at least 32 characters "
                                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
            return self.ledger_jwt_secret
        if not self.is_development:
            raise ConfigurationError(
                "LEDGER_JWT_SECRET is not set. Set it to a random string of at least 32 characters shared by "
                "whoever issues the tokens, or set LEDGER_ENV=development to use a generated local secret.")
        return _development_secret(self.jwt_secret_file)


def _development_secret(path: Path) -> str:
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:  # create exclusively, readable by the owner only; a concurrent creator wins
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


@lru_cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
