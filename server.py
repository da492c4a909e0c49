"""ASGI entry point: `uvicorn server:app`. Settings come from GEO_* environment variables."""

from geo.app import create_app
from geo.settings import Settings

app = create_app(Settings())
