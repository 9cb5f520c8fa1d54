"""Tables gathered row by row or frame by frame without one object per row kept."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


class FrameChunks:
    """Rows of a table gathered piece by piece (per-tile frames or dict rows): every
    ``chunk`` pieces are joined into one frame, and frames of equal size are joined in
    turn (as a binary counter carries), so that a few frames hold all rows and many small
    pieces cost what their values do; :meth:`frame` is the table one ``pd.concat`` of all
    pieces (or ``pd.DataFrame`` of all rows) would give."""

    def __init__(self, columns: Sequence[str] | None = None, chunk: int = 16) -> None:
        self.columns, self.chunk = (list(columns) if columns is not None else None), chunk
        self._stack: list[tuple[int, pd.DataFrame]] = []  # (pieces joined, frame)
        self._frames: list[pd.DataFrame] = []
        self._rows: list[dict[str, object]] = []

    def add_frame(self, frame: pd.DataFrame) -> None:
        self._frames.append(frame)
        if len(self._frames) >= self.chunk:
            self._push()

    def add_row(self, row: dict[str, object]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.chunk:
            self._frames.append(pd.DataFrame(self._rows, columns=self.columns))
            self._rows = []
            self._push()

    def _push(self) -> None:
        self._stack.append((1, pd.concat(self._frames, ignore_index=True)))
        self._frames = []
        while len(self._stack) > 1 and self._stack[-1][0] == self._stack[-2][0]:
            (n, later), (_, earlier) = self._stack.pop(), self._stack.pop()
            self._stack.append((2 * n, pd.concat([earlier, later], ignore_index=True)))

    def frame(self) -> pd.DataFrame:
        """All rows so far as one frame (``columns``, if given, even without a row)."""
        if self._rows or not (self._stack or self._frames):
            self._frames.append(pd.DataFrame(self._rows, columns=self.columns))
            self._rows = []
        if self._frames:
            self._push()
        if len(self._stack) > 1:
            self._stack = [(1, pd.concat([f for _, f in self._stack], ignore_index=True))]
        return self._stack[0][1]
