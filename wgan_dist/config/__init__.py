"""Config checking and process settings: the allowed values of the choice fields, the one-pass
validation of a config before any work, and TensorFlow's C++ log level for the command lines.
The lowest level of the package: imports nothing from wgan_dist."""
