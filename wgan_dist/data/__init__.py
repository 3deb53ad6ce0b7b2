"""Data: the sources by name (`sources.SOURCES`), finding, checking and loading them, the input
pipeline (order, sharding, batching, decoding), and image grids. Imports only `config/` from
wgan_dist."""
