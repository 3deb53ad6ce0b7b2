"""Data: finding, checking and loading `data.source`, the input pipeline (order, sharding,
batching, decoding), and image grids. Imports only `config/` from wgan_dist."""
