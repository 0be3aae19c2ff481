"""The generate progress bar: rich, fed from counters and redrawn twice a second (never per request)."""

from __future__ import annotations

from typing import Any


class DistillProgress:
    """Accepted / rejected / failed counts, requests per second and retries under a progress bar."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]distilling"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]ok {task.fields[acc]}[/] [yellow]rejected {task.fields[rej]}[/] "
                "[red]failed {task.fields[fail]}[/]"
            ),
            TextColumn("{task.fields[rps]} req/s, {task.fields[retries]} retries"),
            TimeElapsedColumn(),
            refresh_per_second=2,
        )
        self._task = self._progress.add_task(
            "distil", total=total, acc=0, rej=0, fail=0, rps="0.0", retries=0
        )

    def start(self, counts: dict[str, int]) -> None:
        self._progress.start()
        self.update(counts, None, 0.0)

    def update(self, counts: dict[str, int], totals: Any, elapsed: float) -> None:
        completed = totals.completed if totals else 0
        self._progress.update(
            self._task,
            completed=counts["done"],
            acc=counts["accepted"],
            rej=counts["rejected"],
            fail=counts["failed"],
            rps=f"{completed / elapsed:.1f}" if elapsed > 0 else "0.0",
            retries=totals.retries if totals else 0,
        )

    def stop(self) -> None:
        self._progress.stop()
