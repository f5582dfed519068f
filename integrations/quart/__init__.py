"""The quart example app."""
