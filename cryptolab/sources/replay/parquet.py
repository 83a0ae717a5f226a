"""The ``parquet`` format: columns named as for ``csv``; timestamp columns of Arrow
timestamp type work (pyarrow is imported when a file is read)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Final

from cryptolab.models.records import Tick
from cryptolab.models.time import as_utc
from cryptolab.sources import RejectHandler
from cryptolab.sources.replay.tabular import map_columns, read_rows

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["read_parquet"]

#: Rows read from the file at a time.
_BATCH_ROWS: Final = 65_536


def _cell(v: object) -> str:
    """A parquet value as the text a CSV file would hold."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        return as_utc(v).isoformat()
    return repr(v) if isinstance(v, float) else str(v)


def read_parquet(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``parquet`` file, its rows read as a CSV file's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(replay.path)
    header = [n.lower() for n in pf.schema_arrow.names]
    cols = map_columns(replay, header)
    names = pf.schema_arrow.names
    ts_type = pf.schema_arrow.field(cols["ts"]).type
    if pa.types.is_timestamp(ts_type):
        replay.ts_unit = None
    wanted = sorted({v for k, v in cols.items() if k != "id_as_ts"})
    row_no = 0

    def rows() -> Iterator[list[str]]:
        nonlocal row_no
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=[names[i] for i in wanted]):
            table = batch.to_pydict()
            columns = [table[names[i]] if i in wanted else [None] * batch.num_rows
                       for i in range(max(wanted) + 1)]
            for r in range(batch.num_rows):
                row_no += 1
                yield [_cell(c[r]) for c in columns]

    yield from read_rows(replay, rows(), cols, on_reject, lambda: row_no)
