"""Requests answered by a worker, of which only the newest counts (no Qt).

The live prediction and the number reading both ask the inference worker about the
drawing on the canvas while it changes.  Each request gets a sequence number and carries
the drawing's *epoch*; a clear starts a new epoch.  An answer for an older epoch, or older
than the newest request, is stale.
"""

from __future__ import annotations


class Requests:
    def __init__(self) -> None:
        self.epoch = 0
        self._seq = 0
        self.latest = 0  # the newest request
        self.delivered = 0  # the newest request whose answer (or error) has arrived

    def start(self) -> tuple[int, int]:
        """A new request: its (sequence number, epoch)."""
        self._seq += 1
        self.latest = self._seq
        return self.latest, self.epoch

    def arrived(self, seq: int) -> None:
        """The answer (or error) to request ``seq`` has arrived."""
        self.delivered = max(self.delivered, seq)

    @property
    def waiting(self) -> bool:
        """A request has been made whose answer has not arrived yet."""
        return self.latest > self.delivered

    def is_newest(self, seq: int, epoch: int) -> bool:
        """Request ``seq`` of ``epoch`` is the newest, for the drawing on the canvas now."""
        return epoch == self.epoch and seq == self.latest

    def next_epoch(self) -> int:
        """A new drawing: answers to earlier requests are stale from now on."""
        self.epoch += 1
        return self.epoch
