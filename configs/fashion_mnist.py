"""Fashion-MNIST WGAN-GP: configs/mnist.py (seed architecture and hyperparameters, SPEC.md)
with data.source='fashion_mnist' (28x28x1, 60,000 training images).

Full run (downloads Fashion-MNIST into ~/.keras/datasets once):
  python -m wgan_dist.main --config=configs/fashion_mnist.py
Tiny models and a handful of steps, for tests (needs Fashion-MNIST cached, or an .npz of
28x28 images via --config.data.source=npz --config.data.path=...):
  python -m wgan_dist.main --config=configs/fashion_mnist.py:tiny --workdir=/tmp/wgan_fm_tiny
"""

import ml_collections

from configs import mnist


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the Fashion-MNIST config; `variant` is '' (full) or 'tiny'."""
  if variant not in ('', 'tiny'):
    raise ValueError(f"configs/fashion_mnist.py: unknown variant {variant!r}; allowed: '' "
                     "(full), 'tiny'")
  config = mnist.get_config(variant)
  config.data.source = 'fashion_mnist'
  # Off: wgan_dist/eval's classifier knows MNIST digits, so its score and class histogram say
  # nothing about clothes (a Fashion-MNIST classifier would be needed).
  config.eval_every_steps = 0
  return config
