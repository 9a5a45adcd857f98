"""The live job table of a sweep (queued / running / passed / failed ...) with elapsed times;
one line per change when stderr is not a terminal (CI logs)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

STYLES = {
    "queued": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "passed": "green",
    "failed": "red",
    "error": "red",
    "crashed": "red",
}


class SweepProgress:
    """Tracks each job's state and start time and shows them."""

    def __init__(self, job_ids: list[str], console: Console) -> None:
        self._console = console
        self._state = dict.fromkeys(job_ids, "queued")
        self._since: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._notes: dict[str, str] = {}
        self._live = Live(self._table(), console=console, auto_refresh=False, transient=True)

    def __enter__(self) -> SweepProgress:
        if self._console.is_terminal:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console.is_terminal:
            self._live.stop()

    def set(self, job_id: str, state: str, note: str = "") -> None:
        """Move a job to state; print the change (or redraw the table on a terminal)."""
        now = time.time()
        if state == "running":
            self._since[job_id] = now
        elif state not in ("queued", "retrying"):
            self._ended[job_id] = now
        self._state[job_id], self._notes[job_id] = state, note
        if self._console.is_terminal:
            self._live.update(self._table(), refresh=True)
            return
        counts = self.counts()
        done = sum(v for k, v in counts.items() if k not in ("queued", "running", "retrying"))
        self._console.print(
            f"[{done}/{len(self._state)}] {escape(job_id)}: {state}"
            + (
                f" ({self._elapsed(job_id)})"
                if self._elapsed(job_id) and job_id in self._ended
                else ""
            )
            + (f" {escape(note)}" if note else ""),
            highlight=False,
            soft_wrap=True,
        )

    def tick(self) -> None:
        """Refresh elapsed times on a terminal."""
        if self._console.is_terminal:
            self._live.update(self._table(), refresh=True)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self._state.values():
            counts[state] = counts.get(state, 0) + 1
        return counts

    def _elapsed(self, job_id: str) -> str:
        if job_id not in self._since:
            return ""
        return f"{self._ended.get(job_id, time.time()) - self._since[job_id]:.1f} s"

    def _table(self) -> Table:
        summary = ", ".join(f"{n} {s}" for s, n in self.counts().items())
        table = Table("job", "state", "elapsed", "note", title=f"sweep: {summary}")
        for job_id, state in self._state.items():
            style = STYLES.get(state, "")
            table.add_row(
                escape(job_id),
                f"[{style}]{state}[/]" if style else state,
                self._elapsed(job_id),
                escape(self._notes.get(job_id, "")[:80]),
            )
        return table
