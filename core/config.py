"""One settings object, read from the environment (prefix ``STILLROOM_``).

``DATABASE_URL`` selects the database; by default Stillroom keeps a SQLite file
under the data directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STILLROOM_", extra="ignore")

    data_dir: Path = Field(default=REPO_ROOT / "data")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "STILLROOM_DATABASE_URL"),
    )
    # Seconds a writer waits for SQLite's lock before giving up.
    busy_timeout_s: float = 10.0
    # The person the CLI acts as when --as is not given.
    user: str | None = None
    # Stillroom recommends kill after this many rounds in which no failing criterion moved by kill_margin.
    kill_after_rounds: int = Field(default=3, ge=1, le=100)
    kill_margin: float = Field(default=0.01, ge=0.0, le=1.0)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stillroom.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
