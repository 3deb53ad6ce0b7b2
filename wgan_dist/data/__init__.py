"""Data: finding, checking and loading `data.source`, the input pipeline (order, sharding,
batching, decoding), the dataset identity (fingerprint and count), and image grids. Imports
only `config/` from wgan_dist."""
