"""Errors the aggregator raises on purpose.

    AggregatorError          anything we report as a one-line message
    ├── ConfigError          the YAML config is missing, malformed or invalid
    ├── FetchError           a source could not be fetched (network, HTTP status, limits)
    ├── ParseError           fetched bytes are not a usable RSS/Atom document
    ├── StoreError           the database is unreachable or refused an operation
    └── ExtractError         no article could be taken from an item's page (full_content)

A failing source is recorded as data (error count, message, backoff); these
exceptions only cross the boundary of one source's update or of the CLI.
"""

from collections.abc import Mapping


class AggregatorError(Exception):
    """Base of every error the aggregator raises deliberately."""


class ConfigError(AggregatorError):
    """The configuration file cannot be used as it is."""


class FetchError(AggregatorError):
    """A source could not be fetched; the message says why.

    For an HTTP error answer, `status` and the response `headers` (lower-case
    names) come along, so that the scheduler can honour Retry-After and a 410
    can disable the source.
    """

    def __init__(self, message: str, *, status: int | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class ParseError(AggregatorError):
    """A fetched body is not a feed we can read."""


class StoreError(AggregatorError):
    """The database cannot be reached or used."""


class ExtractError(AggregatorError):
    """An item's page holds no article we can take; the item keeps the source's content."""
