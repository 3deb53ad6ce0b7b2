"""The allowed values of every config field that names a choice, in one place.

configs/default.py defines the fields and their defaults; this module says which values the
choice fields may take; `config_validation.validate` checks a config against both once, before
any work. The modules that act on a choice (sources, models, strategies, optimizers, precision)
import their names from here and trust a validated config, so adding a value means adding it
here and implementing it where it acts.
"""

# data.source: where the real images come from (wgan_dist/sources.py).
SOURCES = ('mnist', 'embedded_mnist', 'fashion_mnist', 'cifar10', 'folder', 'npz', 'tfds',
           'prepared')
# data.on_bad_image: what to do with image files that cannot be read or decoded.
BAD_IMAGE_POLICIES = ('fail', 'skip')

# model.architecture (wgan_dist/models/architectures.py).
ARCHITECTURES = ('seed', 'dcgan', 'resnet', 'dcgan64')
# The (image size, channels) each architecture's strides produce.
SUPPORTED_IMAGE_SHAPES = {'seed': ((28, 1),), 'dcgan': ((28, 1),), 'resnet': ((32, 3),),
                          'dcgan64': ((64, 3),)}
# model.critic_norm. 'batch' is refused: batch norm couples the examples of a batch, so the
# gradient the penalty constrains is no longer per example.
CRITIC_NORMS = ('layer', 'none')
# model.conditioning: how a class-conditional critic (model.num_classes > 0) uses the label.
CONDITIONINGS = ('acgan', 'projection')
# model.conv_impl: how the seed critic computes its conv1-conv3 (wgan_dist/models/layers.py):
# 'patch_matmul' (one matmul of the patches; faster on CPUs), 'conv' (Conv2D: cuDNN on GPUs),
# 'auto' (resolved once per job: 'conv' with GPUs, else 'patch_matmul'; wgan_dist/devices.py).
CONV_IMPLS = ('auto', 'patch_matmul', 'conv')

# train.lr_decay (wgan_dist/optimizers.py).
LR_DECAYS = ('none', 'linear')

# mixed_precision (wgan_dist/precision.py).
PRECISIONS = ('float32', 'mixed_float16', 'mixed_bfloat16')

# distribution.strategy (wgan_dist/distribution.py).
STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker')
# distribution.all_reduce: how gradients are summed across replicas (wgan_dist/distribution.py).
# 'auto' is resolved once per job (wgan_dist/devices.py); 'nccl' needs GPUs; 'ring' is
# MultiWorkerMirroredStrategy's only; 'hierarchical_copy' and 'reduce_to_one_device' are
# MirroredStrategy's (one process) only.
ALL_REDUCES = ('auto', 'nccl', 'ring', 'hierarchical_copy', 'reduce_to_one_device')
