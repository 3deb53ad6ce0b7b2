"""wgan_dist: WGAN-GP (Gulrajani et al. 2017, Algorithm 1) on tf.distribute.

The training logic lives in importable modules (`train`, `steps`, `losses`, `models`, `data`,
`distribution`, ...); `main.py` is only the command line.
"""
