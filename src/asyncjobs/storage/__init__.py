"""Persistence: the only package that imports SQLAlchemy."""

from asyncjobs.storage.claims import Claim
from asyncjobs.storage.store import Row, Store, cancelled_error, cancelled_values

__all__ = ["Claim", "Row", "Store", "cancelled_error", "cancelled_values"]
