"""The web app's settings, read once from environment variables (or a mapping, for tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workers import config
from workers.intake import DEFAULT_DEDUP_SECONDS

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # Meta sends up to 3 MB


@dataclass(frozen=True)
class Settings:
    app_secrets: tuple[str, ...]
    onprem_tokens: tuple[str, ...]
    verify_token: str
    insecure: bool
    max_body: int
    dedup_seconds: int
    redis_url: str | None

    @property
    def authentication_configured(self) -> bool:
        return bool(self.app_secrets or self.onprem_tokens)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            app_secrets=config.secrets(env, "WASTATUS_APP_SECRET"),
            onprem_tokens=config.secrets(env, "WASTATUS_ONPREM_TOKEN"),
            verify_token=env.get("WASTATUS_VERIFY_TOKEN", ""),
            insecure=config.flag(env, "WASTATUS_INSECURE"),
            max_body=int(env.get("WASTATUS_MAX_BODY") or DEFAULT_MAX_BODY),
            dedup_seconds=int(config.seconds(env, "WASTATUS_DEDUP_WINDOW", DEFAULT_DEDUP_SECONDS)),
            redis_url=config.redis_url(env),
        )
