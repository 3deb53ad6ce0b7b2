"""The allowed values of the config's simple switches: choice fields that no one extends, each
acted on in one place (named beside it).

configs/default.py defines the fields and their defaults; `config.validation.validate` checks a
config against these values once, before any work, and the modules that act on a field trust a
validated config. The extension points (model.architecture, model.conditioning, data.source,
mixed_precision, distribution.all_reduce) are not here: each has a registry beside its
implementation, which is both its dispatch and its list of allowed values (config/registry.py).
"""

# data.on_bad_image: what to do with image files that cannot be read or decoded
# (data/sources.py).
BAD_IMAGE_POLICIES = ('fail', 'skip')

# model.critic_norm (models/layers.py critic_norm_layer). 'batch' is refused: batch norm couples
# the examples of a batch, so the gradient the penalty constrains is no longer per example.
CRITIC_NORMS = ('layer', 'none')
# model.conv_impl: how the seed critic computes its conv1-conv3 (models/layers.py):
# 'patch_matmul' (one matmul of the patches; faster on CPUs), 'conv' (Conv2D: cuDNN on GPUs),
# 'auto' (resolved once per job: 'conv' with GPUs, else 'patch_matmul'; dist/devices.py).
CONV_IMPLS = ('auto', 'patch_matmul', 'conv')

# train.lr_decay (algorithm/optimizers.py).
LR_DECAYS = ('none', 'linear')

# distribution.strategy (dist/distribution.py).
STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker')
