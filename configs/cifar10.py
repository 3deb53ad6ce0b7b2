"""CIFAR-10 WGAN-GP with the paper's ResNet (Gulrajani et al. 2017, gan_cifar_resnet.py).

Full run, the paper's settings (all local GPUs, or the CPU; downloads CIFAR-10 into
~/.keras/datasets once; runs/cifar10 is the default workdir):
  python -m wgan_dist.main --config=configs/cifar10.py
The paper's class-conditional model (AC-GAN critic, conditional batch norm in the generator):
  python -m wgan_dist.main --config=configs/cifar10.py:conditional --workdir=runs/cifar10_cond
Tiny models and a handful of steps, for tests (needs CIFAR-10 cached, or an .npz of 32x32x3
images via --config.data.source=npz --config.data.path=...):
  python -m wgan_dist.main --config=configs/cifar10.py:tiny --workdir=/tmp/wgan_cifar_tiny

The paper reports an unsupervised Inception Score of 7.86 ± 0.07 for this model (Table 3,
"WGAN-GP ResNet (ours)") and 8.42 ± 0.10 for the conditional one; reference only, nothing here
has reproduced either.

Evaluation (FID and Inception Score every 5,000 steps, logged as eval/fid and
eval/inception_score) runs only with local InceptionV3 weights; without them training logs one
warning and skips it. Get the file once on a machine with internet:
  wget https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5
then:
  python -m wgan_dist.main --config=configs/cifar10.py \
      --config.eval_inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5
The real images are the first num_eval_samples (1,000) of the CIFAR-10 test split. Figures use
Keras's InceptionV3 and 1,000 samples in one split, not the paper's 50,000 samples with the 2015
Inception graph: close to, not the same as, the 7.86 above (docs/evaluation.md).

The paper's settings: 128-channel generator and critic, 3 residual blocks each (the critic's
first, "optimised" block comes before them), batch norm in the generator only, noise 128-d,
Adam lr 2e-4 decaying linearly to 0 over 100k generator steps for both networks,
β = (0, 0.9), n_critic = 5, λ = 10, batch 64. Known differences from the paper's code: it gave
the generator update twice the batch (GEN_BS_MULTIPLE = 2) and added uniform dequantisation
noise to the real images; here both use the global batch and the pixels as stored.
"""

import ml_collections

from configs import default


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the CIFAR-10 ResNet config; `variant` is '' (full), 'conditional' or 'tiny'."""
  config = default.get_config()
  config.data.source = 'cifar10'
  config.data.image_size = 32
  config.data.channels = 3
  config.model.architecture = 'resnet'
  config.model.noise_dim = 128
  config.model.base_filters = 128  # DIM_G = DIM_D = 128.
  config.model.critic_norm = 'none'  # NORMALIZATION_D = False.
  config.train.global_batch_size = 64
  config.train.n_critic = 5
  config.train.gp_lambda = 10.0
  config.train.learning_rate = 2e-4
  config.train.beta1 = 0.0
  config.train.beta2 = 0.9
  config.train.lr_decay = 'linear'
  config.train.num_steps = 100_000
  config.sample_every_steps = 1000
  config.checkpoint_every_steps = 5000
  # Inception FID / IS; runs only when eval_inception_weights is set (docstring).
  config.eval_every_steps = 5000

  if variant == 'conditional':
    # The paper's conditional model (its best CIFAR-10 figure, Inception Score 8.42): the same
    # ResNet with class-conditional batch norm in the generator and an AC-GAN critic, whose
    # cross-entropy weighs 1 in the critic's loss and 0.1 in the generator's
    # (CONDITIONAL = ACGAN = True, ACGAN_SCALE = 1, ACGAN_SCALE_G = 0.1 in its code).
    config.model.num_classes = 10
    config.model.conditioning = 'acgan'
    config.train.acgan_critic_weight = 1.0
    config.train.acgan_generator_weight = 0.1
  elif variant == 'tiny':
    default.shrink_for_tests(config, base_filters=8, noise_dim=16)
  elif variant:
    raise ValueError(f"configs/cifar10.py: unknown variant {variant!r}; allowed: '' (full), "
                     "'conditional', 'tiny'")
  return config
