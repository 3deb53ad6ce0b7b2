"""Data: the sources by name (`sources.SOURCES`), finding, checking and loading them, the input
pipeline (order, sharding, batching, decoding), the dataset identity (fingerprint and count),
and image grids. Imports only `config/` from wgan_dist."""
