"""The gateway's configuration: one object, built once at start-up and passed down.

Values come from ``HOME/settings.json`` (written by ``init``), overridden by
``SIGNAALPOORT_*`` environment variables. ``config show`` prints it with secrets masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.policy import Policy
from gateway.schema import Category

DEFAULT_RETENTION_MONTHS = 6
DEFAULT_SFTP_MAX_FILE_BYTES = 1024 * 1024 * 1024  # 100,000 envelopes of 10 recipients: ~800 MiB


_OIN = r"^[0-9]{20}$"


class GemeenteRouting(BaseModel):
    """Where one municipality's signals go (DOMAIN.md, "Routing in practice").

    A matched resident goes to the team of their district, found by the longest
    ``districts`` prefix of their wijkcode (``"N"`` covers ``N01``..``N99``), else to
    ``default_team``; a label overrides the district: ``schuldhulp`` names its team,
    ``labels`` names the team of every other label (``geregelde_betaling``). Review
    goes to the ``backoffice``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_team: str = Field(pattern=_OIN)
    backoffice: str = Field(pattern=_OIN)
    districts: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("districts", "labels")
    @classmethod
    def _oins(cls, value: dict[str, str]) -> dict[str, str]:
        for key, oin in value.items():
            if not key or len(oin) != 20 or not oin.isdigit():
                raise ValueError(f"{key!r}: the team must be a 20-digit OIN")
        return value

    def district_team(self, district: str | None) -> str | None:
        """The team of a district: the one under its longest matching prefix, if any."""
        best = ""
        for prefix in self.districts:
            if district and district.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.districts[best] if best else None


class Settings(BaseSettings):
    """Everything the gateway can be told; see docs/ for what each value means."""

    model_config = SettingsConfigDict(env_prefix="SIGNAALPOORT_", extra="forbid")

    home: Path
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; empty means SQLite in the home"
    )
    gateway_id: str = Field(description="the gateway's id: the aud of every notice")
    routing: dict[str, GemeenteRouting] = Field(
        default_factory=dict, description="gemeente code -> where its signals go"
    )
    retention_months: dict[Category, int] = Field(
        default_factory=lambda: {c: DEFAULT_RETENTION_MONTHS for c in Category}
    )
    policy: Policy = Field(
        default_factory=Policy.shipped,
        description="the category rules and experiments (gateway/policy.json, docs/policy.md); "
        "an empty policy refuses every notice",
    )
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    sftp_listen_host: str = "127.0.0.1"
    sftp_port: int = Field(default=2222, ge=0, le=65535, description="0 picks a free port")
    sftp_max_file_bytes: int = Field(
        default=DEFAULT_SFTP_MAX_FILE_BYTES, gt=0, description="the largest file one upload may be"
    )
    sftp_mode: Literal["embedded", "openssh"] = Field(
        default="embedded",
        description="embedded: serve's own SFTP server; openssh: OpenSSH writes the drop folders",
    )
    openssh_dropboxes: dict[str, Path] = Field(
        default_factory=dict,
        description="creditor OIN -> its OpenSSH chroot folder (holding inbox/ and receipts/)",
    )
    batch_interval_seconds: float = Field(
        default=5.0, gt=0, description="how often serve looks for complete batch files"
    )
    batch_workers: int = Field(
        default=0, ge=0, description="processes judging a batch file; 0: one per core"
    )
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="how often serve purges expired retention buckets"
    )
    retention_open_case_months: int = Field(
        default=1,
        ge=1,
        description="how much longer an open case is kept each time its bucket expires",
    )

    @field_validator("retention_months")
    @classmethod
    def _positive(cls, value: dict[Category, int]) -> dict[Category, int]:
        if any(months < 1 for months in value.values()):
            raise ValueError("retention must be at least one month")
        return {**{c: DEFAULT_RETENTION_MONTHS for c in Category}, **value}

    @field_validator("openssh_dropboxes")
    @classmethod
    def _chroots(cls, value: dict[str, Path]) -> dict[str, Path]:
        for oin, folder in value.items():
            if len(oin) != 20 or not oin.isdigit():
                raise ValueError(f"{oin!r}: a drop box is named by the creditor's 20-digit OIN")
            if not folder.is_absolute() or ".." in folder.parts:
                raise ValueError(f"{oin}: the chroot folder must be an absolute path without ..")
        if len(set(value.values())) != len(value):
            raise ValueError("two creditors cannot share a chroot folder")
        return value

    @model_validator(mode="after")
    def _openssh_needs_dropboxes(self) -> Self:
        if self.sftp_mode == "openssh" and not self.openssh_dropboxes:
            raise ValueError("sftp_mode openssh needs at least one entry in openssh_dropboxes")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the home's settings file.
        return (env_settings, init_settings)

    @classmethod
    def load(cls, home: Path) -> Settings:
        """Settings for the gateway whose home is ``home``."""
        path = home / "settings.json"
        values: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        values["home"] = home
        # The home named on the command line wins over $SIGNAALPOORT_HOME.
        return cls(**values).model_copy(update={"home": home})

    @property
    def store_url(self) -> str:
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'gateway.db').resolve()}"

    @property
    def master_keys_dir(self) -> Path:
        return self.home / "master-keys"

    def shown(self) -> dict[str, Any]:
        """The settings as ``config show`` prints them: secrets masked."""
        data = self.model_dump(mode="json")
        url = self.store_url
        data["database_url"] = _mask_url(url)
        return data


def _mask_url(url: str) -> str:
    # postgresql://user:password@host/db -> postgresql://user:***@host/db
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in creds else url
