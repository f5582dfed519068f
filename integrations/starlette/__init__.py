"""The starlette example app."""
