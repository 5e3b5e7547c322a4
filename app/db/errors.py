"""Errors of the database layer, with messages for people.

A connection error from libpq ("password authentication failed for user ...") becomes a
`DatabaseError` whose message says what happened and which setting to fix, and where
that setting was made, e.g. "Wrong password for user 'app' on 127.0.0.1:5432. Fix
DB_PASSWORD (set in /home/me/app/.env)."  The target is an app.db.params.ConnectionParams;
every text taken from libpq goes through its `redact`.
"""

from __future__ import annotations

import re


class DatabaseError(Exception):
    """Base class.  ``str(err)`` is a message for the user; ``setting`` names what to fix."""

    def __init__(self, message: str, *, setting: str | None = None):
        super().__init__(message)
        self.message = message
        self.setting = setting


class DatabaseConfigError(DatabaseError):
    """The settings are wrong (password, user, database name, host name); retrying won't help."""


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached now (refused, timed out, stopped); writes go to the spool."""


class EmbeddedServerError(DatabaseError):
    """The embedded PostgreSQL server could not be started."""


class InvalidRecord(DatabaseError, ValueError):
    """The database refused a value (a check constraint); nothing was written."""


class UnknownPrediction(DatabaseError, LookupError):
    """No prediction has this uuid."""


class UnknownModelVersion(DatabaseError, LookupError):
    """No model version has this id."""


class SchemaError(DatabaseError):
    """The schema could not be applied or migrated."""


_PATTERNS: list[tuple[re.Pattern, type[DatabaseError], str, str]] = [
    (re.compile(r'password authentication failed for user "(?P<v>[^"]*)"'),
     DatabaseConfigError, "PASSWORD", "Wrong password for user '{v}' on {where}."),
    (re.compile(r"no password supplied|fe_sendauth"),
     DatabaseConfigError, "PASSWORD", "The server at {where} wants a password for user '{user}' and none is set."),
    (re.compile(r'role "(?P<v>[^"]*)" does not exist'),
     DatabaseConfigError, "USER", "There is no user '{v}' on {where}."),
    (re.compile(r'database "(?P<v>[^"]*)" does not exist'),
     DatabaseConfigError, "NAME", "There is no database '{v}' on {where}; create it or choose another."),
    (re.compile(r'could not translate host name "(?P<v>[^"]*)"'),
     DatabaseConfigError, "HOST", "Unknown host '{v}': its name does not resolve."),
    (re.compile(r"no pg_hba\.conf entry"),
     DatabaseConfigError, "USER",
     "The server at {where} does not accept user '{user}' from this machine (pg_hba.conf)."),
    (re.compile(r"Connection refused"),
     DatabaseUnavailable, "PORT",
     "Nothing accepts connections at {where} (connection refused). Is PostgreSQL running there?"),
    (re.compile(r"timeout expired|timed out"),
     DatabaseUnavailable, "HOST", "No answer from {where} in time."),
    (re.compile(r"No route to host|Network is unreachable"),
     DatabaseUnavailable, "HOST", "Cannot reach {where}: no route to that host."),
    (re.compile(r"No such file or directory"),
     DatabaseUnavailable, "HOST", "No PostgreSQL server is running at {where}."),
    (re.compile(r"the database system is (starting up|shutting down|in recovery mode"
                r"|not yet accepting connections)"),
     DatabaseUnavailable, "HOST", "The server at {where} is starting or stopping."),
]


def describe_connect_error(exc: BaseException, target) -> DatabaseError:
    """Turn a psycopg2 connection error into a `DatabaseError` with a message for people.

    ``target``: the ConnectionParams of the attempt (where, user, via, setting, redact).
    """
    text = target.redact(str(exc).strip())
    for pattern, kind, setting_name, template in _PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        v = m.groupdict().get("v", "")
        message = template.format(v=v, where=target.where, user=target.user or "?")
        if target.via == "embedded" and kind is DatabaseUnavailable:
            # Nobody fixes the embedded server with DB_PORT: say what is wrong instead.
            return DatabaseUnavailable("The embedded database server is not running.",
                                       setting=None)
        setting = target.setting(setting_name)
        if kind is DatabaseUnavailable:
            message += f" If the server is elsewhere, fix {setting}."
        else:
            message += f" Fix {setting}."
        return kind(message, setting=setting)
    first_line = text.splitlines()[0] if text else type(exc).__name__
    message = f"Cannot connect to the database at {target.where}: {first_line}"
    if target.via == "embedded":
        return DatabaseUnavailable(message, setting=None)
    setting = target.setting("HOST")
    return DatabaseUnavailable(f"{message} If the server is elsewhere, fix {setting}.",
                               setting=setting)
