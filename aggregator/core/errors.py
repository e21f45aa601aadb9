"""The error hierarchy: every failure a user can meet is one of these, shown as one line."""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error the aggregator reports to a user."""


class ConfigError(AggregatorError):
    """feeds.yaml is unreadable or invalid; the message names file, line and field."""


class FetchError(AggregatorError):
    """A feed could not be downloaded."""


class ParseError(AggregatorError):
    """A downloaded document is not a usable feed."""


class StorageError(AggregatorError):
    """The archive database could not be opened or written."""


class PublishError(AggregatorError):
    """The republished feeds or the site could not be written."""


class RecordRefusedError(StorageError):
    """The archive refused what one poll would write (a value SQLite cannot hold, a constraint), while
    it may still take every other feed's: that feed's failure, not the run's."""
