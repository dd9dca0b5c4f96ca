"""Renderers behind the one `Engine` protocol (see `base`): `preview` (CPU,
classical computer vision, no weights), and model/upstream engines that
plug into the same seam."""
