"""CandlePipeline: consume ticks -> aggregate candles -> score -> commit exactly once.

One pipeline is one member of a Kafka consumer group; to scale, run more
processes (``cryptolab consume``) up to the topic's partition count.

The exactly-once effect comes from committing results and progress together:
for every batch, candles (closed and revised), alerts, too-late ticks and the
consumer's progress for each partition (next offset, watermark and the
windowing state) are written in **one** database transaction, fenced on the
offset the batch started from. On start, restart or rebalance a member loads
that progress, restores its windows and seeks to the stored offset, so the
result is the same as if nothing had happened. Kafka's own committed offsets
are written too, but only as a courtesy for lag monitoring.

Commits run on a thread of their own, one at a time: while batch N is written
(store, then cache), batch N+1 is consumed and folded; N+1 is committed only
after N has landed, with N's offsets as its fencing token. When N is fenced,
what was folded meanwhile is dropped and folded again from the stored offsets.
When the topic has nothing more to give, the pipeline waits for the commit in
flight before it waits for messages, so a live feed's commits are not delayed.

Redis (or the in-process cache) is updated after the commit: at least once,
with idempotent payloads (monotonic "latest" keys). When it is down, updates
are kept (latest per key) and replayed when it returns; the SQL path goes on.
When the store is down, the pipeline pauses its partitions and retries the
same commit: nothing is committed twice and nothing is lost.

Modules, in the order a batch meets them:

- :mod:`~cryptolab.pipeline.consumer`: :class:`CandlePipeline`, the loop and the rebalance callbacks
- :mod:`~cryptolab.pipeline.partitions`: the partitions a member owns, where each stands, its windows
- :mod:`~cryptolab.pipeline.decode`: records -> ticks as columns, or dead-letter reasons
- :mod:`~cryptolab.pipeline.dead_letters`: records that are not ticks, to ``<topic>.dlq``
- :mod:`~cryptolab.pipeline.committer`: the commit thread and its fence (landed or fenced)
- :mod:`~cryptolab.pipeline.relay`: what landed, to Kafka's ``alerts`` and the cache (with a backlog)
- :mod:`~cryptolab.pipeline.end`: ``run(stop_at_end=True)``: when the whole topic is done
- :mod:`~cryptolab.pipeline.retries`, :mod:`~cryptolab.pipeline.stats`: store retries; counters
"""

from __future__ import annotations

from cryptolab.pipeline.consumer import CandlePipeline

# The decoder's bulk helpers, by their former paths (tests exercise them).
from cryptolab.pipeline.decode import _decode_wire as _decode_wire
from cryptolab.pipeline.decode import _runs as _runs
from cryptolab.pipeline.decode import _struct_columns as _struct_columns
from cryptolab.pipeline.decode import _valid_columns as _valid_columns
from cryptolab.pipeline.stats import PipelineStats

__all__ = ["CandlePipeline", "PipelineStats"]
