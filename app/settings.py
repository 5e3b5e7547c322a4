"""One settings object for the whole application.

Read once from the environment and an optional ``.env`` file (environment wins), then
passed to whoever needs it.  No other module reads ``os.environ``.

Variables:
    MNIST_DIR         folder with the four MNIST ``.gz`` files (default: <data>/mnist)
    MNIST_MODEL_PATH  weights file to load (default: the shipped saved_models/mnist_classifier.pth);
                      ``MODEL_PATH`` is accepted as another name for it (MNIST_MODEL_PATH wins)
    MNIST_DATA_HOME   per-user data folder (default: platformdirs' user data dir)
    MNIST_MIRROR      a base URL holding the four MNIST .gz files, tried before the public mirrors
    DATABASE_URL      a PostgreSQL URL; wins over the DB_* variables
    DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD   the product's own database variables
If neither DATABASE_URL nor DB_HOST is set, the embedded PostgreSQL server is used.

The settings remember where each value came from (`source_of`, `where_set`): the
environment or the ``.env`` file, whose absolute path is ``dotenv_path`` (None when no
``.env`` was read), so that a message can say which file or variable to fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values

from app import paths

log = logging.getLogger(__name__)

ENVIRONMENT = "the environment"
# Every variable the settings read (for the log line naming what a .env set).
VARIABLES = ("MNIST_DIR", "MNIST_MODEL_PATH", "MODEL_PATH", "MNIST_DATA_HOME", "DATABASE_URL",
             "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "MNIST_MIRROR")
DB_DEFAULTS = {"DB_PORT": "5432", "DB_NAME": "mnist", "DB_USER": "postgres", "DB_PASSWORD": ""}


@dataclass(frozen=True)
class Settings:
    data_home: Path
    mnist_dir: Path
    model_path: Path
    # Secrets stay out of repr(): a logged Settings must not show a password.
    database_url: str | None = field(default=None, repr=False)
    db_params: dict = field(default_factory=dict, repr=False)
    dotenv_path: Path | None = None
    # variable name -> ENVIRONMENT or the .env file's absolute path, for the variables set.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    mnist_mirror: str | None = None

    # ---- derived locations -------------------------------------------------
    @property
    def embedded_pg_dir(self) -> Path:
        return self.data_home / "postgres"

    @property
    def spool_dir(self) -> Path:
        return self.data_home / "spool"

    @property
    def models_dir(self) -> Path:
        """Where weights trained by the user are written."""
        return self.data_home / "models"

    @property
    def uses_embedded_db(self) -> bool:
        return self.database_url is None

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    # ---- where values came from ------------------------------------------------
    def source_of(self, name: str) -> str | None:
        """Where variable ``name`` was set: "the environment", the .env file's path, or
        None when it was not set (or the settings were not loaded from variables)."""
        return self.sources.get(name)

    def where_set(self, name: str) -> str:
        """``name`` with where it was set, for messages: "DATABASE_URL (set in the
        environment)", "DB_PASSWORD (set in /home/me/app/.env)", "DB_PORT (not set)"."""
        source = self.source_of(name)
        if source is None:
            return f"{name} (not set)" if self.sources else name
        return f"{name} (set in {source})"

    # ---- loading -------------------------------------------------------------
    @classmethod
    def load(cls, env: Mapping[str, str] | None = None,
             dotenv_path: str | os.PathLike | None = ".env") -> "Settings":
        """Build settings from ``env`` (default ``os.environ``) over a ``.env`` file."""
        values: dict[str, str] = {}
        sources: dict[str, str] = {}
        read_from: Path | None = None
        if dotenv_path is not None and Path(dotenv_path).is_file():
            read_from = Path(dotenv_path).resolve()
            from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
            values.update(from_file)
            sources.update((k, str(read_from)) for k in from_file)
        environment = os.environ if env is None else env
        for name in VARIABLES:
            if name in environment:
                values[name] = environment[name]
                sources[name] = ENVIRONMENT
        if read_from is not None:
            named = sorted(name for name in VARIABLES if sources.get(name) == str(read_from))
            log.info("Read settings from %s (%s)", read_from, ", ".join(named) or "none used")

        data_home = Path(values.get("MNIST_DATA_HOME") or paths.default_user_data_dir())
        mnist_dir = Path(values.get("MNIST_DIR") or data_home / "mnist")
        model_name = "MNIST_MODEL_PATH" if values.get("MNIST_MODEL_PATH") else "MODEL_PATH"
        model_path = Path(values.get(model_name) or paths.bundled_model_path())
        if values.get("MNIST_MODEL_PATH") and values.get("MODEL_PATH"):
            log.info("MNIST_MODEL_PATH and MODEL_PATH are both set; using MNIST_MODEL_PATH")
        # Only the variables that are set and used count as sources.
        used = {k: v for k, v in sources.items() if values.get(k) not in (None, "")}
        url, params = _database_from(values)
        return cls(data_home=data_home, mnist_dir=mnist_dir, model_path=model_path,
                   database_url=url, db_params=params, dotenv_path=read_from, sources=used,
                   mnist_mirror=values.get("MNIST_MIRROR") or None)


def _database_from(values: Mapping[str, str]) -> tuple[str | None, dict]:
    """DATABASE_URL as given, or the DB_* variables (and a URL naming them, for the
    code that wants one; app.db builds its connection from ``db_params``)."""
    if values.get("DATABASE_URL"):
        return values["DATABASE_URL"], {}
    if not values.get("DB_HOST"):
        return None, {}
    params = {
        "host": values["DB_HOST"],
        "port": values.get("DB_PORT") or DB_DEFAULTS["DB_PORT"],
        "dbname": values.get("DB_NAME") or DB_DEFAULTS["DB_NAME"],
        "user": values.get("DB_USER") or DB_DEFAULTS["DB_USER"],
        "password": values.get("DB_PASSWORD", DB_DEFAULTS["DB_PASSWORD"]),
    }
    from urllib.parse import quote

    user = quote(params["user"], safe="")
    auth = user + (":" + quote(params["password"], safe="") if params["password"] else "")
    host = params["host"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    url = f"postgresql://{auth}@{host}:{quote(params['port'], safe='')}/" \
          f"{quote(params['dbname'], safe='')}"
    return url, params
