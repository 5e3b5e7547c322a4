"""Errors into messages for people (app.viewmodels.Problem): the whole message, with the
technical part moved behind "Details…" rather than cut.

- An error that quotes the error behind it in parentheses (a weights file "is corrupt
  (PytorchStreamReader failed reading zip archive: failed finding centr...)") keeps its
  own words; the quote goes, and the error behind it goes whole into the details.
- "Could not download <file>: <mirror> (<reason>); <mirror> (<reason>). <what to do>"
  keeps what to do; the mirrors tried and why each failed go into the details.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from app.viewmodels import Problem

log = logging.getLogger(__name__)

_DOWNLOAD = re.compile(r"^(?P<head>Could not download (?P<name>\S+)): (?P<tried>.+?)\. (?P<rest>This computer .*)$",
                       re.DOTALL)


def words(exc: BaseException) -> str:
    """An error's words for people (its class name when it has none)."""
    return str(exc) or type(exc).__name__


def _without_quote(text: str, cause: BaseException) -> str | None:
    """``text`` without the " (...)" that quotes ``cause``'s first words; None when it has none."""
    quoted = words(cause).strip().splitlines()[0][:40] if words(cause).strip() else ""
    if not quoted:
        return None
    start = text.find(" (" + quoted)
    if start < 0:
        return None
    # The parenthesis that closes the quote; a quote cut short ends "...)", perhaps inside
    # a parenthesis of its own, which then never closes.
    end = _closing(text, start + 1)
    cut = text.find("...)", start)
    if cut >= 0 and (end < 0 or cut + 3 < end):
        end = cut + 3
    if end < 0:
        return None
    return text[:start] + text[end + 1:]


def _closing(text: str, opening: int) -> int:
    """The index of the parenthesis that closes the one at ``opening`` (-1: none)."""
    depth = 0
    for i in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def problem_from(exc: BaseException, text: str | None = None, path: Path | None = None) -> Problem:
    """A Problem for ``exc``; ``text``: the message to use instead of the error's own words
    (the details are still found in the error)."""
    own = words(exc)
    text = own if text is None else text
    details: list[str] = []
    download = _DOWNLOAD.match(own)
    if download:
        text = text.replace(own, f"{download['head']}. {download['rest']}")
        details.append("Tried, one after the other:\n" + "\n".join(
            f"- {part.strip()}" for part in download["tried"].split("; ")))
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(cause, (KeyboardInterrupt, SystemExit)):
        shorter = _without_quote(own, cause)
        if shorter is not None:
            text = text.replace(own, shorter)
        full = words(cause).strip()
        details.append(f"{type(cause).__name__}: {full}")
    return Problem(text, "\n\n".join(details) or None, path)
