"""Watchlist alerts, delivered through the store's outbox to webhooks and MQTT (docs/SERVICE.md).

``matching`` decides which alerts an event raises (the store's own watchlist rule), ``outbox``
sends the pending rows with retries, ``webhook`` and ``mqtt`` are the two kinds of target.
"""
from .matching import alert_key, alerts_for, event_payload
from .outbox import DeliveryError, Dispatcher, OutboxWorker, RetryPolicy, message_body

__all__ = ["DeliveryError", "Dispatcher", "OutboxWorker", "RetryPolicy", "alert_key", "alerts_for",
           "event_payload", "message_body"]
