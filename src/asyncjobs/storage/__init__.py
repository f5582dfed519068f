"""Persistence: the only package that imports SQLAlchemy."""

from asyncjobs.storage.store import Claim, Row, Store, cancelled_error, cancelled_values

__all__ = ["Claim", "Row", "Store", "cancelled_error", "cancelled_values"]
