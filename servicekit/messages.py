"""A message a service publishes: what happened (or what it asks), about which aggregate, why.

A service's `messages.py` builds these from typed arguments; `Outbox.add(session, message)`
stages one in the transaction of the state change it reports. `Cause` is the one way to say
"this answers that": the event id of the command answered, and the flow (correlation id) both
belong to.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message as Payload

from ecommerce.events.v1 import envelope_pb2


@dataclass(frozen=True, slots=True)
class Cause:
    """The message another one follows from; empty for a message that starts a flow."""

    event_id: str = ""
    correlation_id: str = ""

    @classmethod
    def of(cls, envelope: envelope_pb2.EventEnvelope) -> Cause:
        """The cause of a reply to `envelope`: that envelope, in that envelope's flow."""
        return cls(event_id=envelope.event_id, correlation_id=envelope.correlation_id)


NO_CAUSE = Cause()


@dataclass(frozen=True, slots=True)
class Message:
    """One event or command on its way to a topic, keyed by `aggregate_id`.

    Without a cause's correlation id, the message starts a flow of its own, named by its
    aggregate id.
    """

    topic: str
    event_type: str
    aggregate_id: str
    payload: Payload
    cause: Cause = NO_CAUSE
