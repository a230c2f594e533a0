"""The status track: the status a process is in, the one the mirror shows, the one write between
them, and the requests waiting for the mirror to show that they took effect.

The machine (machine.py) decides every move; this keeps the books that make requests safe
whatever their timing. Each move bumps a version; a write carries the version it was made at,
and only one write is in flight. A request is answered once the mirror has taken the version that
carries it, or at once with the mirror's status when the mirror moved on by itself (the last
Success write completed the process, or it was paused or ended through the mirror).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..states import ProcessStatus, Request

S = ProcessStatus


@dataclass(frozen=True)
class Write:
    """Write this status to the mirror; answered by `Machine.written_as`."""

    status: ProcessStatus
    next_run_at: datetime | None = None
    error: str | None = None
    paused_from: ProcessStatus | None = None


@dataclass(frozen=True)
class Refused:
    """A request's answer when it did not take effect: the process is `status`."""

    status: ProcessStatus


@dataclass
class _Ticket:
    request: Request
    version: int  #: the status version that carries it
    answer: Refused | None = None
    settled: bool = False


def _shows(request: Request, status: ProcessStatus) -> bool:
    """Whether a process in `status` shows that `request` took effect."""
    if request is Request.PAUSE:
        return status is S.PAUSED
    if request is Request.CANCEL:
        return status is S.CANCELLED
    return status is not S.PAUSED and not status.is_terminal


@dataclass
class StatusTrack:
    """One run's books of its process's status and of the requests waiting on it."""

    status: ProcessStatus  #: the status the process is in
    #: the status the mirror shows, as far as the workflow knows (and the Pending time written)
    written: ProcessStatus
    # Each move bumps `version`; the mirror has taken up to `written_version`.
    version: int = 0
    written_version: int = 0
    writing: Write | None = None
    writing_version: int = 0  #: the version the write in flight carries
    written_next_run_at: datetime | None = None
    #: a status the mirror showed by itself (not written from here), while the process is in it
    taken: ProcessStatus | None = None
    tickets: dict[int, _Ticket] = field(default_factory=dict)
    next_ticket: int = 1

    # Moves and writes

    def set(self, status: ProcessStatus) -> None:
        self.status = status
        self.version += 1
        self.taken = None

    def next_write(self, desired: Write) -> tuple[Write | None, bool]:
        """(the write to make for `desired`, or None; whether the versions since the last write
        count as written). Nothing is written while a write is in flight, nor when the mirror
        shows `desired` already (the process toggled back to it)."""
        if self.writing is not None:
            return None, False
        if desired.status is self.written and (desired.status is not S.PENDING or desired.next_run_at == self.written_next_run_at):
            caught_up = self.written_version < self.version
            self.written_version = self.version
            return None, caught_up
        self.writing, self.writing_version = desired, self.version
        return desired, False

    def written_as(self, status_now: ProcessStatus) -> bool:
        """The mirror's answer to the write in flight; False if it shows another status than the
        one written (the caller then takes that status with `take`)."""
        assert self.writing is not None
        write, self.writing = self.writing, None
        if status_now is not write.status:
            return False
        self.written = status_now
        self.written_next_run_at = write.next_run_at
        self.written_version = self.writing_version
        return True

    def take(self, status: ProcessStatus) -> None:
        """The mirror shows `status`, which was not written from here: it is the process's status
        now, and requests not yet written are answered with it."""
        for ticket in self.tickets.values():
            if not ticket.settled:
                ticket.answer, ticket.settled = (None if _shows(ticket.request, status) else Refused(status)), True
        by_itself = status is not self.written  # not the last status written from here
        self.mark_written(status)
        self.taken = status if by_itself else None

    def mark_written(self, status: ProcessStatus) -> None:
        """`status` is in the mirror (written by the process itself, or taken from the mirror)."""
        self.status = self.written = status
        self.version += 1
        self.written_version = self.version
        self.taken = None

    def shown_by_mirror(self, request: Request) -> bool:
        """Whether the mirror shows a pause's or a cancel's effect by itself. A request's status
        write is a local activity, which runs before the workflow task that took the request
        completes; if the server loses that task, the write stands while the request is
        delivered again, and the workflow may meanwhile have taken the status from the mirror.
        Such a request is done, not refused."""
        return request is not Request.RESUME and self.taken is self.status and _shows(request, self.status)

    # Requests

    def issue(self, request: Request, *, answer: Refused | None = None, settled: bool = False) -> int:
        """A ticket for `request`, carried by the current version; `settled`: answered at once
        (refused with `answer`, or done)."""
        ticket = self.next_ticket
        self.next_ticket += 1
        self.tickets[ticket] = _Ticket(request, self.version, answer, settled)
        return ticket

    def answer(self, ticket: int) -> tuple[bool, Refused | None]:
        """(settled, refusal): whether the ticket's request has been answered, and if so how."""
        entry = self.tickets[ticket]
        return entry.settled, entry.answer

    def forget(self, ticket: int) -> None:
        self.tickets.pop(ticket, None)

    def settle(self, *, stopped: bool) -> None:
        """Answer the requests the mirror now shows; `stopped`: the run has ended (a cancel is
        answered only then, so that no attempt is in flight once its caller hears of it)."""
        for ticket in self.tickets.values():
            if ticket.settled or ticket.version > self.written_version:
                continue
            if ticket.request is Request.CANCEL:
                if self.written is S.CANCELLED and not stopped:
                    continue
                if self.written is not S.CANCELLED:
                    ticket.answer = Refused(self.written)
            ticket.settled = True
