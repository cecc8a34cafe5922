"""Row selection on frames whose columns are Arrow arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd


def rows_where(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """``frame.loc[mask]`` (a new frame), without a take when the mask selects no row or
    every row: pyarrow joins a chunked column's chunks for any take, even of no rows, so
    selecting nothing from a million-row export cost as much as copying it."""
    if not mask.any():
        return frame.iloc[:0].copy()
    if mask.all():
        return frame.copy(deep=False)  # copy-on-write: columns shared until written
    return frame.loc[mask]
