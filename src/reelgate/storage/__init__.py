"""Where assets live: local files (the default) or an S3-compatible store,
behind the one `Storage` interface (`base.py`)."""

from __future__ import annotations

from reelgate.config import Settings
from reelgate.storage.base import Storage, UrlSigner


def open_storage(settings: Settings, signer: UrlSigner) -> Storage:
    """The backend `settings.storage_url` names."""
    url = settings.storage_url
    if url and url.startswith("s3://"):
        from reelgate.storage.s3 import S3Storage

        return S3Storage(
            url,
            settings.data_dir / "work",
            settings.resolved_public_base_url,
            signer,
            settings.asset_url_ttl_seconds,
            endpoint=settings.s3_endpoint_url,
            public_url=settings.s3_public_base_url,
            links=settings.asset_links,
            timeout=settings.s3_timeout,
        )
    from reelgate.storage.local import LocalStorage

    return LocalStorage(
        settings.assets_dir,
        settings.resolved_public_base_url,
        signer,
        settings.asset_url_ttl_seconds,
    )
