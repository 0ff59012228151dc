"""aggregator: poll RSS/Atom sources, deduplicate items by original URL, republish a static archive."""

__version__ = "0.1.0"
