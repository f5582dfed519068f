"""The fastapi example app."""
