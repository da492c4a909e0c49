"""Afghanistan infrastructure & project mapper: layers, stores, OGC API - Features, web maps."""

__version__ = "0.1.0"
