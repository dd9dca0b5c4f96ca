"""reelgate: a self-hosted video-generation API server speaking the Luma API dialects."""

__version__ = "0.1.0"
