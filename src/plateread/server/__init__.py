"""``plateread serve``: Plate Recognizer's Snapshot API, a JSON API and a dashboard over the store.

Needs the ``[server]`` extra (FastAPI, uvicorn, Jinja2, python-multipart, prometheus-client).
"""
from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
