"""Where every accepted event is: the ingestion accounting identity.

    accepted + replayed = stored + buffered + dead_lettered + spooled

``accepted`` events were answered 200; ``replayed`` were read back from the
spool at start; ``stored`` were written (a re-sent event id already stored
counts as stored); ``buffered`` are queued or being written; ``dead_lettered``
were refused by the store and kept in ``ingest_dead_letters`` with the reason;
``spooled`` were written to the spool file at shutdown, to be replayed at the
next start. ``unaccounted`` is the difference and is 0 unless an event was lost.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from controltower.ingest.buffer import IngestBuffer


@dataclass
class IngestAccount:
    """The writer's side of the identity (the buffer counts ``accepted``)."""

    buffer: IngestBuffer
    replayed: int = 0
    stored: int = 0
    dead_lettered: int = 0
    spooled: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wrote(self, stored: int = 0, dead: int = 0) -> None:
        """Events of the batch in flight were stored or dead-lettered."""
        with self.lock:
            self.stored += stored
            self.dead_lettered += dead
            self.in_flight -= stored + dead

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            accepted = self.buffer.accepted
            buffered = len(self.buffer) + self.in_flight
            figures = {
                "accepted": accepted,
                "replayed": self.replayed,
                "stored": self.stored,
                "buffered": buffered,
                "dead_lettered": self.dead_lettered,
                "spooled": self.spooled,
            }
        figures["unaccounted"] = (
            accepted + self.replayed - self.stored - buffered - self.dead_lettered - self.spooled
        )
        return figures
