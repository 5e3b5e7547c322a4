"""Peak memory of the current process (Linux), for the child processes that measure what a
bad input costs: ``base = reset_peak()``, do the work, then ``peak_mb() - base``."""

import resource


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> float:
    """Reset the peak resident set size to the current one (Linux ≥ 4.0); return it in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_mb("VmRSS")
    except OSError:  # no way to reset: measure from the peak so far (can only under-count growth)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    """The peak resident set size since the last reset, in MB."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
