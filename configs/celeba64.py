"""64x64 faces (CelebA) with the DCGAN of the paper's gan_64x64.py and a layer-norm critic.

Point data.path at a directory of images (searched recursively; .png/.jpg/...), e.g. CelebA's
img_align_celeba (178x218): the largest centred square is cropped and resized to 64x64.
  python -m wgan_dist.main --config=configs/celeba64.py \
      --config.data.path=/data/celeba/img_align_celeba
Tiny models and a handful of steps, for tests:
  python -m wgan_dist.main --config=configs/celeba64.py:tiny \
      --config.data.path=/data/faces --workdir=/tmp/wgan_celeba_tiny

Evaluation (FID and Inception Score every 2,000 steps, eval/fid and eval/inception_score) runs
only with local InceptionV3 weights; without them training logs one warning and skips it. Get
the file once on a machine with internet:
  wget https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5
then add
  --config.eval_inception_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels.h5
The real images are a fixed random num_eval_samples (1,000) of the folder's images, cropped and
resized as training sees them (training images: FID against the training set, as usual for
CelebA). See docs/evaluation.md.

Settings of gan_64x64.py in its WGAN-GP mode: DIM = 64, noise 128-d, batch norm in the generator,
per-example layer norm in the critic, constant Adam lr 1e-4 with β = (0, 0.9), n_critic = 5,
λ = 10, batch 64. Its 200k iterations were for 64x64 ImageNet; here the length is the project
default of 50 epochs (about 31.7k generator steps on the 202,599 CelebA images).
"""

import ml_collections

from configs import default


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the 64x64 image-folder config; `variant` is '' (full) or 'tiny'."""
  config = default.get_config()
  config.data.source = 'folder'
  config.data.path = ''  # Required: --config.data.path=<directory of images>.
  config.data.image_size = 64
  config.data.channels = 3
  config.data.center_crop = True
  config.model.architecture = 'dcgan64'
  config.model.noise_dim = 128
  config.model.base_filters = 64  # DIM.
  config.model.critic_norm = 'layer'
  config.train.global_batch_size = 64
  config.train.n_critic = 5
  config.train.gp_lambda = 10.0
  config.train.learning_rate = 1e-4
  config.train.beta1 = 0.0
  config.train.beta2 = 0.9
  config.train.lr_decay = 'none'
  config.train.num_steps = -1
  config.train.num_epochs = 50
  # Inception FID / IS; runs only when eval_inception_weights is set (docstring).
  config.eval_every_steps = 2000

  if variant == 'tiny':
    default.shrink_for_tests(config, base_filters=4, noise_dim=16)
  elif variant:
    raise ValueError(f"configs/celeba64.py: unknown variant {variant!r}; allowed: '' (full), "
                     "'tiny'")
  return config
