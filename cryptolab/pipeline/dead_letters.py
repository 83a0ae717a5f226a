"""Dead letters: the records that are not ticks, to ``<topic>.dlq``, durable before a commit."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Message, Producer

from cryptolab.errors import KafkaServiceError
from cryptolab.kafka import DLQ_SUFFIX, dlq_headers
from cryptolab.pipeline.stats import PipelineStats

__all__ = ["DeadLetters"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")


class DeadLetters:
    """The consumer's dead-letter queue, ``<topic>.dlq``.

    Each record is produced with its original bytes and key and ``reason``/``field``/``stage``/
    origin headers (:func:`~cryptolab.kafka.dlq_headers`). Their offsets are committed with
    the batch, so :meth:`flush` makes them durable first.

    Parameters
    ----------
    topic
        The tick topic.
    stats
        The pipeline's counters (``dead_letters``).
    stop
        Set when the pipeline is asked to stop: :meth:`flush` then gives up.
    """

    def __init__(self, topic: str, stats: PipelineStats, stop: threading.Event) -> None:
        self.topic = topic + DLQ_SUFFIX
        self.stats = stats
        self.stop = stop
        #: The run's producer (``None`` between runs).
        self.producer: Producer | None = None
        #: Whether some dead letters have not been flushed yet.
        self.pending = False

    def send(self, m: Message, reason: str, field: str) -> None:
        """Produce ``m``'s record as a dead letter, labelled with the ``field`` at fault and why."""
        self.stats.dead_letters += 1
        assert self.producer is not None
        headers = dlq_headers(reason, field, stage="consume", origin=(m.topic() or "", m.partition(), m.offset()))
        self.producer.produce(self.topic, value=m.value(), key=m.key(), headers=headers)
        self.pending = True
        log.debug("dead letter at %s/%s@%s: %s %s", m.topic(), m.partition(), m.offset(), field, reason)

    def flush(self) -> None:
        """Wait until every dead letter is durable: their offsets are committed next.

        While Kafka is unreachable this waits (the consumer is stalled anyway) rather
        than give up on the batch or drop the dead letters; when the pipeline is stopped
        the batch is abandoned uncommitted, so a restart dead-letters its records again.

        Raises
        ------
        KafkaServiceError
            Stopping while some are not delivered.
        """
        assert self.producer is not None
        waited = 0
        while (remaining := self.producer.flush(5)) > 0:
            waited += 5
            if self.stop.is_set():
                raise KafkaServiceError(
                    f"stopping with {remaining} dead-letter records not delivered: batch not committed"
                )
            log.warning("Kafka unavailable: %d dead-letter records not delivered after %ds; waiting",
                        remaining, waited)
        self.pending = False
