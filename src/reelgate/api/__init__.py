"""HTTP: the app factory, auth, assets and one package per dialect."""
