"""One settings object for the whole application.

Read once from the environment and an optional ``.env`` file (environment wins), then
passed to whoever needs it.  No other module reads ``os.environ``.

Variables:
    MNIST_DIR         folder with the four MNIST ``.gz`` files (default: <data>/mnist)
    MNIST_MODEL_PATH  weights file to load (default: the shipped saved_models/mnist_classifier.pth)
    MNIST_DATA_HOME   per-user data folder (default: platformdirs' user data dir)
    MNIST_MIRROR      a base URL holding the four MNIST .gz files, tried before the public mirrors
    DATABASE_URL      a PostgreSQL URL; wins over the DB_* variables
    DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD   the product's own database variables
If neither DATABASE_URL nor DB_HOST is set, the embedded PostgreSQL server is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from dotenv import dotenv_values

from app import paths


@dataclass(frozen=True)
class Settings:
    data_home: Path
    mnist_dir: Path
    model_path: Path
    database_url: str | None = None
    db_params: dict = field(default_factory=dict)
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

    # ---- loading -------------------------------------------------------------
    @classmethod
    def load(cls, env: Mapping[str, str] | None = None,
             dotenv_path: str | os.PathLike | None = ".env") -> "Settings":
        """Build settings from ``env`` (default ``os.environ``) over a ``.env`` file."""
        values: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ if env is None else env)

        data_home = Path(values.get("MNIST_DATA_HOME") or paths.default_user_data_dir())
        mnist_dir = Path(values.get("MNIST_DIR") or data_home / "mnist")
        model_path = Path(values.get("MNIST_MODEL_PATH") or paths.bundled_model_path())
        url, params = _database_from(values)
        return cls(data_home=data_home, mnist_dir=mnist_dir, model_path=model_path,
                   database_url=url, db_params=params, mnist_mirror=values.get("MNIST_MIRROR") or None)


def _database_from(values: Mapping[str, str]) -> tuple[str | None, dict]:
    if values.get("DATABASE_URL"):
        return values["DATABASE_URL"], {}
    if not values.get("DB_HOST"):
        return None, {}
    params = {
        "host": values["DB_HOST"],
        "port": values.get("DB_PORT", "5432"),
        "dbname": values.get("DB_NAME", "mnist"),
        "user": values.get("DB_USER", "postgres"),
        "password": values.get("DB_PASSWORD", ""),
    }
    user = quote(params["user"], safe="")
    auth = user + (":" + quote(params["password"], safe="") if params["password"] else "")
    url = f"postgresql://{auth}@{params['host']}:{params['port']}/{quote(params['dbname'], safe='')}"
    return url, params
