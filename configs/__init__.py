"""Configuration files; each exposes `get_config(arg)` for ml_collections' config_flags."""
