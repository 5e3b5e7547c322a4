"""Errors into messages: the words for people whole, the technical part in the details."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.controllers.problems import problem_from
from app.ml import data
from app.ml.errors import ModelFileError


def test_a_download_that_failed_keeps_what_to_do_and_lists_the_mirrors_in_the_details(tmp_path):
    """The real downloader, with one mirror that refuses the connection."""
    where = tmp_path / "mnist"
    with pytest.raises(Exception) as raised:
        data.download(where, mirrors=["http://127.0.0.1:9/"])
    exc = raised.value
    problem = problem_from(exc)
    assert str(exc).startswith("Could not download ") and "127.0.0.1:9" in str(exc)
    assert str(problem).startswith("Could not download ") and str(problem).endswith(str(exc).split(". ", 1)[1])
    assert "127.0.0.1:9" not in str(problem) and "copy the four MNIST files" in str(problem)
    assert problem.details.startswith("Tried, one after the other:\n- http://127.0.0.1:9/")
    assert "Connection refused" in problem.details


def test_an_internal_error_quoted_cut_goes_whole_into_the_details():
    cause = RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory. "
                         "This is an internal miniz error (see the docs). If you are seeing this error, there is "
                         "a high likelihood that your checkpoint file is corrupted.")
    try:
        raise ModelFileError(f"Model file /m/x.pth is corrupt or not a weights file ({str(cause)[:120]}...). "
                             f"Train a new model or choose another weights file.") from cause
    except ModelFileError as exc:
        problem = problem_from(exc, path=Path("/m/x.pth"))
    assert str(problem) == ("Model file /m/x.pth is corrupt or not a weights file. Train a new model or choose "
                            "another weights file.")
    assert problem.details == f"RuntimeError: {cause}" and problem.path == Path("/m/x.pth")


def test_an_error_without_a_cause_is_left_as_it_is():
    problem = problem_from(ValueError("epochs must be at least 1"))
    assert str(problem) == "epochs must be at least 1" and problem.details is None
