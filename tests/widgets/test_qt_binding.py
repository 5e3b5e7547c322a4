"""The Qt binding must keep Python's reference counts right, or every GUI run crashes."""

from app.qtcompat import binding_problem


def test_the_qt_binding_does_not_lose_references():
    assert binding_problem() is None
