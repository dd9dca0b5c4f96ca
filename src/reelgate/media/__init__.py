"""Media handling: decoding user images, fitting them to frame sizes, encoding
and probing MP4 files. Engines and the worker share these so every clip is
produced and checked the same way."""
