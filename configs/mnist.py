"""MNIST WGAN-GP with the seed architecture and hyperparameters (README, "Architectures").

Full run (all local GPUs, or the CPU):
  python -m wgan_dist.main --config=configs/mnist.py
CPU-friendly run that shows recognisable digits in 7-15 minutes on 2 cores (CPU-dependent):
  python -m wgan_dist.main --config=configs/mnist.py:quick
Tiny models and a handful of steps, for tests:
  python -m wgan_dist.main --config=configs/mnist.py:tiny --workdir=/tmp/wgan_tiny
"""

import ml_collections

from configs import default


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the MNIST config; `variant` is '' (full), 'quick' or 'tiny'."""
  config = default.get_config()
  config.data.source = 'mnist'
  config.model.architecture = 'seed'
  config.model.noise_dim = 100
  config.train.global_batch_size = 64
  config.train.n_critic = 5
  config.train.gp_lambda = 10.0
  config.train.learning_rate = 1e-4
  config.train.num_epochs = 50
  # Averaged generator weights, warmed up (train.ema_warmup), logged as eval_ema/* beside eval/*.
  config.train.ema_decay = 0.999

  if variant == 'quick':
    # The paper's MNIST models at a quarter width (DIM = 16): 1.4-3 generator steps per second
    # on the 2-core CPUs measured, so 1,200 generator steps take 7-15 minutes.
    config.model.architecture = 'dcgan'
    config.model.base_filters = 16
    config.model.noise_dim = 128
    config.model.critic_norm = 'none'
    # Twice the paper's rate: at 1,200 steps the samples are clearly digits (0-9 readable),
    # where 1e-4 still gives half-formed strokes; Adam's beta = (0, 0.9) is kept.
    config.train.learning_rate = 2e-4
    config.train.num_steps = 1200
    config.log_every_steps = 50
    config.sample_every_steps = 200
    config.checkpoint_every_steps = 400
  elif variant == 'tiny':
    config.data.source = 'embedded_mnist'
    default.shrink_for_tests(config, base_filters=4, noise_dim=8)
  elif variant:
    raise ValueError(
        f"configs/mnist.py: unknown variant {variant!r}; allowed: '' (full), 'quick', 'tiny'")
  return config
