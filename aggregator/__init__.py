"""aggregator: poll RSS/Atom/JSON feeds into a SQLite archive that keeps every entry forever."""

__version__ = "0.1.0"
