"""wgan_dist: WGAN-GP (Gulrajani et al. 2017, Algorithm 1) on tf.distribute.

The training logic lives in importable modules (`train`, `trainer`, `actions`, `steps`,
`losses`, `models`, `sources`, `input_pipeline`, `distribution`, ...; README's Layout section
maps them); `main.py` is only the command line.
"""
