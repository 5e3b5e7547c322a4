"""Connection parameters, built in one place from parsed fields, and the one redaction.

settings -> `ConnectionParams` -> messages.  A ``DATABASE_URL`` (or the ``DB_*``
variables) is parsed here into host, port, database, user and password; the connection
is made from those fields (keyword arguments, never the URL text), and every message
about it is built from the fields and passed through `ConnectionParams.redact`.  So a
password never reaches an exception message, a log line or the status bar, also when
the URL is malformed (a scheme typo, an unencoded ``/`` or ``#`` in the password, an
unclosed IPv6 bracket): such a URL is refused with a message that quotes none of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote

from app.db.errors import DatabaseConfigError

SCHEMES = ("postgresql", "postgres")
REDACTED = "***"
# Shorter passwords are not searched for in messages (replacing every "ab" would make
# them unreadable); no message here ever quotes a URL or a password anyway.
MIN_REDACT_LEN = 4
# What TCP connections get: a server that vanishes mid-query is noticed in ~15 s.
TCP_OPTIONS = dict(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                   tcp_user_timeout=15000)

# scheme://userinfo@ ... up to the last "@" of a run without spaces, so that a password
# holding "/", "#", "?" or ":" is still covered.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s@]*(?:@[^\s@]*)*)@")
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&]+)",
                               re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the password of any URL or ``password=...`` in it replaced by ***.

    Works on malformed URLs too: everything between ``scheme://`` and the last ``@`` of
    the word is treated as user and password.
    """
    def userinfo(m: re.Match) -> str:
        info = m["userinfo"]
        user = info.split(":", 1)[0] if ":" in info else info
        if "/" in user or "?" in user or "#" in user:
            user = ""
        return f"{m['scheme']}{user}:{REDACTED}@" if info else m.group(0)

    text = _URL_USERINFO.sub(userinfo, text)
    return _KEYWORD_PASSWORD.sub(lambda m: m["key"] + REDACTED, text)


@dataclass(frozen=True)
class ConnectionParams:
    """Where and how to connect, parsed; the password is kept out of repr().

    via:     which settings named the server: "url" (DATABASE_URL), "params" (DB_HOST,
             DB_PORT, ...) or "embedded" (the app's own server).
    origins: variable name -> where it was set ("the environment" or a .env path), for
             the messages that say what to fix.
    options: further libpq keywords (from the URL's query: sslmode, passfile, ...).
    """

    host: str | None = None
    port: str | None = None
    dbname: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)
    via: str = "url"
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    # ---- building ---------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, *, via: str = "url",
                 origins: Mapping[str, str] | None = None) -> "ConnectionParams":
        """Parse a ``postgresql://`` URL (or libpq ``key=value`` settings).

        Raises `DatabaseConfigError` saying what is wrong and which setting to fix; the
        message quotes no part of ``url`` but its scheme.
        """
        origins = dict(origins or {})
        blank = cls(via=via, origins=origins)
        if not isinstance(url, str) or not url.strip():
            raise blank._bad("is empty")
        text = url.strip()
        if "://" not in text:
            if "=" in text:
                return cls._from_keywords(text, blank)
            raise blank._bad("is not a PostgreSQL URL: it must look like "
                             "postgresql://user:password@host:5432/database")
        scheme, rest = text.split("://", 1)
        if scheme.lower() not in SCHEMES:
            shown = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,19}", scheme) else "something else"
            raise blank._bad(f"must start with postgresql:// (it starts with {shown}://)")
        return cls._from_uri_rest(rest, blank)

    @classmethod
    def from_fields(cls, *, host: str | None, port: str | int | None = None,
                    dbname: str | None = None, user: str | None = None,
                    password: str | None = None, via: str = "params",
                    origins: Mapping[str, str] | None = None) -> "ConnectionParams":
        """From separate values (DB_HOST, DB_PORT, ...); the port is checked."""
        made = cls(host=host or None, port=None if port in (None, "") else str(port),
                   dbname=dbname or None, user=user or None, password=password or None,
                   via=via, origins=dict(origins or {}))
        made._check_port(made.port)
        return made

    @classmethod
    def from_settings(cls, settings) -> "ConnectionParams":
        """From an app.settings.Settings that names an external server."""
        origins = dict(getattr(settings, "sources", {}) or {})
        params = getattr(settings, "db_params", None)
        if params:
            return cls.from_fields(host=params.get("host"), port=params.get("port"),
                                   dbname=params.get("dbname"), user=params.get("user"),
                                   password=params.get("password"), via="params",
                                   origins=origins)
        return cls.from_url(settings.database_url, via="url", origins=origins)

    @classmethod
    def _from_keywords(cls, text: str, blank: "ConnectionParams") -> "ConnectionParams":
        import psycopg2.extensions

        try:
            parsed = psycopg2.extensions.parse_dsn(text)
        except psycopg2.ProgrammingError:
            # (libpq's message would quote the text, password included.)
            raise blank._bad("is neither a URL (postgresql://...) nor valid key=value "
                             "settings") from None
        known = {k: parsed.pop(k, None) for k in ("host", "port", "dbname", "user", "password")}
        made = cls(**known, options=parsed, via=blank.via, origins=blank.origins)
        made._check_port(made.port)
        return made

    @classmethod
    def _from_uri_rest(cls, rest: str, blank: "ConnectionParams") -> "ConnectionParams":
        # The authority ends at the first "/", "?" or "#".  An "@" after that means the
        # user name or password holds one of those characters unencoded.
        end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
                  default=len(rest))
        authority, tail = rest[:end], rest[end:]
        path_and_query, _, fragment = tail.partition("#")
        path, _, query = path_and_query.partition("?")
        if "@" in path or "@" in fragment or re.match(r"^[^=&]*@", query):
            raise blank._bad("has a '/', '?' or '#' in its user name or password: write them "
                             "percent-encoded (%2F, %3F, %23), or use DB_PASSWORD")
        if fragment:
            raise blank._bad("has a '#' part, which a database URL cannot have: write '#' "
                             "in a password as %23")
        userinfo, at, hostport = authority.rpartition("@")
        user = password = None
        if at:
            user_text, colon, password_text = userinfo.partition(":")
            user = unquote(user_text) or None
            password = unquote(password_text) if colon else None
        hosts, ports = [], []
        for part in hostport.split(",") if hostport else []:
            host, port = cls._split_host_port(part, blank)
            hosts.append(host)
            ports.append(port)
        dbname = unquote(path[1:]) if path.startswith("/") and len(path) > 1 else None
        options: dict[str, str] = {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise blank._bad("has a malformed query part (after '?'): it must be "
                             "name=value pairs joined by '&'") from None
        for key, value in pairs:
            options[key] = value
        made = cls(host=options.pop("host", None) or ",".join(hosts) or None,
                   port=options.pop("port", None) or (",".join(p or "" for p in ports)
                                                      if any(ports) else None),
                   dbname=options.pop("dbname", None) or dbname,
                   user=options.pop("user", None) or user,
                   password=options.pop("password", None) or password,
                   options=options, via=blank.via, origins=blank.origins)
        for port in (made.port or "").split(","):
            made._check_port(port or None)
        return made

    @classmethod
    def _split_host_port(cls, part: str, blank: "ConnectionParams") -> tuple[str, str | None]:
        if part.startswith("["):
            close = part.find("]")
            if close < 0:
                raise blank._bad("has an unclosed '[' in its host: an IPv6 address is "
                                 "written [::1]")
            host, rest = unquote(part[1:close]), part[close + 1:]
            if rest and not rest.startswith(":"):
                raise blank._bad("has something after the ']' of its IPv6 host that is "
                                 "not ':port'")
            return host, rest[1:] or None
        if "]" in part:
            raise blank._bad("has a ']' in its host without a '['")
        host, colon, port = part.partition(":")
        return unquote(host), (port or None) if colon else None

    def _check_port(self, port: str | None) -> None:
        if port is None:
            return
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            # (Not quoted: with a malformed URL the "port" may be part of a password.)
            raise DatabaseConfigError(
                f"The port in {self._name('PORT')} is not a number from 1 to 65535. "
                f"Fix {self.setting('PORT')}.", setting=self.setting("PORT"))

    def _bad(self, problem: str) -> DatabaseConfigError:
        """A refused DATABASE_URL (the value itself is never quoted)."""
        name = self._name("HOST")
        return DatabaseConfigError(f"The database setting {name} {problem}. "
                                   f"Fix {self.setting('HOST')}.", setting=self.setting("HOST"))

    # ---- using ---------------------------------------------------------------------
    def connect_kwargs(self, *, connect_timeout: int | None = None,
                       application_name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect."""
        kwargs: dict[str, Any] = {k: v for k, v in (
            ("host", self.host), ("port", self.port), ("dbname", self.dbname),
            ("user", self.user), ("password", self.password)) if v is not None}
        kwargs.update(self.options)
        if connect_timeout is not None:
            kwargs.setdefault("connect_timeout", connect_timeout)
        if application_name is not None:
            kwargs.setdefault("application_name", application_name)
        if self.host and not all(h.startswith("/") for h in self.host.split(",")):
            for key, value in TCP_OPTIONS.items():
                kwargs.setdefault(key, value)
        return kwargs

    @property
    def where(self) -> str:
        """The place for people: "embedded", "host:port" or "local socket /path"."""
        if self.via == "embedded":
            return "embedded"
        host = self.host
        if not host or host.startswith("/"):
            return "local socket" + (f" {host}" if host else "")
        shown = f"[{host}]" if ":" in host and "," not in host else host
        return f"{shown}:{self.port}" if self.port else shown

    def redact(self, text: str) -> str:
        """``text`` with this password (plain or percent-encoded) and any URL password
        replaced by ***."""
        text = redact_text(str(text))
        secret = self.password
        if secret and len(secret) >= MIN_REDACT_LEN:
            from urllib.parse import quote, quote_plus

            for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
                text = text.replace(form, REDACTED)
        return text

    def describe(self) -> str:
        """For logs: where, database and user; never the password."""
        if self.via == "embedded":
            return "the embedded server"
        return f"{self.where}, database {self.dbname or '(default)'}, user {self.user or '(default)'}"

    # ---- naming the setting to fix -----------------------------------------------------
    def _name(self, part: str) -> str:
        """The variable that holds ``part`` (HOST, PORT, NAME, USER, PASSWORD)."""
        return "DATABASE_URL" if self.via == "url" else f"DB_{part}"

    def setting(self, part: str) -> str:
        """The words for "fix this": ``part`` is one of HOST, PORT, NAME, USER, PASSWORD.

        Names where the value was set ("DATABASE_URL (set in the environment)",
        "DB_PASSWORD (set in /home/me/app/.env)") when that is known.
        """
        if self.via == "embedded":
            return "MNIST_DATA_HOME (or set DATABASE_URL to use another server)"
        name = self._name(part)
        source = self.origins.get(name)
        if self.via == "params":
            if source:
                return f"{name} (set in {source})"
            if self.origins:
                where = self.origins.get("DB_HOST", "the environment")
                return f"{name} (not set; DB_HOST is set in {where})"
            return f"{name} in .env or the environment"
        if source:
            return f"DATABASE_URL (set in {source})"
        return f"DATABASE_URL (or DB_{part})"
