"""The django example app."""
