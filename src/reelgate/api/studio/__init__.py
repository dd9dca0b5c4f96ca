"""reelgate studio: the web page served at `/` and `/studio`, a client of
the public API (templates and static files ship in this package)."""

from reelgate.api.studio.routes import install

__all__ = ["install"]
