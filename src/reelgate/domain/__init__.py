"""The domain: neutral models, states, constants, errors and small value types.

This package is the bottom layer: it imports nothing else of reelgate, so
every other package (api, core, store, worker, engines, media, storage) may
depend on it without cycles.
"""
