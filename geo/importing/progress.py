"""A progress bar on the terminal (rich) for long imports and exports; nothing when stderr is not one.

`progress(description, total)` is a context manager that yields `advance(n)`. On a terminal it draws a
bar (a pulsing one when `total` is None) on stderr and removes it when done; when stderr is a file or a
pipe (a script, a test, CI) it draws nothing and `advance` does nothing, so output stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Advance = Callable[[int], None]


def _nothing(_count: int = 1) -> None:
    return None


def shown(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn on `stream` (stderr by default): only on a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress(description: str, total: int | None, stream: TextIO | None = None) -> Iterator[Advance]:
    """A bar of `total` steps (unknown: None) while the block runs, on `stream` if it is a terminal."""
    stream = sys.stderr if stream is None else stream
    if not shown(stream):
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns += [MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(count: int = 1) -> None:
            bar.advance(task, count)

        yield advance
