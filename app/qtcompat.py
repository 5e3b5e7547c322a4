"""A check of the Qt binding: does it keep Python's reference counts right?

PySide6 6.12.0 (abi3 wheels) on Python 3.11 returns ``None`` from every void method, and
``True`` from ``Signal.emit()``, without taking a reference.  Each such call lowers the
count of ``None`` or ``True`` by one, and after some thousand calls the interpreter aborts
("Fatal Python error: none_dealloc" / "bool_dealloc"), at the latest at exit.  PySide6
6.11.2 is fine, and so is any binding on Python 3.12+ (where None and True are immortal).
``binding_problem()`` finds out in a few microseconds; the app says so at start-up.
"""

from __future__ import annotations

import sys


def binding_problem() -> str | None:
    """A message for people when the Qt binding is one that crashes Python, else None."""
    if sys.version_info >= (3, 12):
        return None
    import PySide6
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(4):
        probe.setObjectName("probe")  # a void method
        probe.ping.emit()
    lost_none = none_before - sys.getrefcount(None)
    lost_true = true_before - sys.getrefcount(True)
    _give_back(None, lost_none)
    _give_back(True, lost_true)
    if lost_none >= 4 or lost_true >= 4:
        return (f"PySide6 {PySide6.__version__} does not work with Python "
                f"{sys.version_info.major}.{sys.version_info.minor}: it loses references to "
                f"None and True, and the program will crash. Install PySide6-Essentials 6.11.2 "
                f"(make venv does, from requirements.txt) or use Python 3.12 or newer.")
    return None


def _give_back(obj, n: int) -> None:
    if n <= 0:
        return
    import ctypes

    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None
    for _ in range(n):
        incref(obj)
