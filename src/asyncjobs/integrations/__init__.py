"""Adapters that run asyncjobs inside Starlette/FastAPI, Django and Quart."""
