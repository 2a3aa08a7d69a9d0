"""Standing questions ("watches"): questions kept in the index folder, evaluated against the
articles each commit adds or changes, whose new verified answers go out as signed webhook
deliveries (Standard Webhooks) that are persisted, retried with backoff and listed as events.

Owns watches.sqlite in the index folder (nothing else writes it). May import config, dates,
schema, text and ingestion (the fetch guard); it reaches the index and the answering only
through the service object handed to `Watches`, so it sits beside the service, below the shells.
"""

from .book import Watches, WatchError
from ..schema.watches import (
    Notification, PreviousAnswer, WatchCreated, WatchEventOut, WatchFilters, WatchIn, WatchOut,
)

__all__ = [
    "Notification", "PreviousAnswer", "WatchCreated", "WatchError", "WatchEventOut", "WatchFilters", "WatchIn",
    "WatchOut", "Watches",
]
