"""Fashion-MNIST WGAN-GP: configs/mnist.py (the seed architecture and hyperparameters)
with data.source='fashion_mnist' (28x28x1, 60,000 training images).

Full run (downloads Fashion-MNIST into ~/.keras/datasets once):
  python -m wgan_dist.main --config=configs/fashion_mnist.py
Tiny models and a handful of steps, for tests (needs Fashion-MNIST cached, or an .npz of
28x28 images via --config.data.source=npz --config.data.path=...):
  python -m wgan_dist.main --config=configs/fashion_mnist.py:tiny --workdir=/tmp/wgan_fm_tiny

Evaluation (Inception FID and Inception Score of the images replicated to RGB, every 1,000
steps) runs only with local InceptionV3 weights, which the project's MNIST digit classifier
cannot replace for clothes; without them training logs one warning and skips it. Get
inception_v3_weights_tf_dim_ordering_tf_kernels.h5 once on a machine with internet (URL in
docs/evaluation.md) and add
  --config.eval_inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5
The real images are a fixed random num_eval_samples (1,000) of the training images.
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
  # Inception FID / IS, only when eval_inception_weights is set (docstring): the MNIST digit
  # classifier's score and class histogram would say nothing about clothes.
  config.eval_every_steps = 0 if variant == 'tiny' else 1000
  return config
