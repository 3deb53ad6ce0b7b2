"""Config checking and process settings: the `Registry` class and where each extension point's
registry lives, the allowed values of the simple choice fields, the one-pass validation of a
config before any work, and TensorFlow's C++ log level for the command lines. The lowest level
of the package: imports nothing from wgan_dist when imported (validation looks the registries
up by name; config/registry.py says why)."""
