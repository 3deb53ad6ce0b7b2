"""Every configuration field of wgan_dist, defined once, with its default.

The allowed values of a choice field are not repeated here: an extension point's field
(model.architecture, model.conditioning, data.source, mixed_precision, distribution.all_reduce)
takes the names of its registry, whose home the field's comment gives (config/registry.py lists
them); the simple switches take wgan_dist/config/schema.py's values.

Variants (`configs/mnist.py`, ...) import `get_config()` from here and change only what
differs. The returned config is locked by the command line, so a misspelt override such as
`--config.train.n_critc=3` fails instead of being silently ignored.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration (Algorithm 1 with the original blog's defaults)."""
  config = ml_collections.ConfigDict()

  # Seed of every random draw: weights, data order, noise z, interpolation epsilon.
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Where the real images come from: a name of the registry SOURCES in wgan_dist/data/sources.py
  # (built-in data sets, a directory of images 'folder', an array file 'npz', a TFDS set 'tfds',
  # a directory written by python -m wgan_dist.prepare 'prepared': docs/data.md).
  config.data.source = 'mnist'
  # Directory of images ('folder'), of a prepared dataset ('prepared'), a .npz file ('npz') or a
  # TFDS dataset name ('tfds').
  config.data.path = ''
  # Side length and channel count the model sees; images of another size are resized.
  config.data.image_size = 28
  config.data.channels = 1
  # Sources that download ('mnist', 'fashion_mnist', 'cifar10', 'tfds') may try the network;
  # when False they use only what is cached or prepared ('mnist' then falls back to the
  # embedded sample).
  config.data.allow_download = True
  # Crop the largest centred square before resizing (e.g. CelebA's 178x218 faces); False
  # resizes the whole image (changing its aspect ratio when it is not square).
  config.data.center_crop = False
  # An image file that cannot be decoded ('folder'): 'fail' stops before training with an error
  # naming the file; 'skip' leaves it out, counts it and logs the count and the first names.
  config.data.on_bad_image = 'fail'
  # 'tfds' only: the split to train on, in TFDS's split syntax ('train', 'train[:90%]',
  # 'train+validation'), and the TFDS data directory ('' = TFDS's default: $TFDS_DATA_DIR or
  # ~/tensorflow_datasets).
  config.data.split = 'train'
  config.data.tfds_data_dir = ''
  # A resume whose data order's inputs differ from the checkpoint's (the data set's fingerprint
  # or image count, seed, train.global_batch_size or train.n_critic) stops before any step,
  # naming the old and new values. True continues anyway, from the checkpoint's weights, with
  # the new order (and, with train.num_steps=-1, the new length): a deliberate change.
  config.data.allow_changed_on_resume = False
  # Train on the first N images of the training stream, in stored order, after the evaluation
  # reference's held-out images are left out (eval_reference); 0 = all. For the limited-data
  # regime (a few hundred or thousand images) with the data that ships; the images after the
  # first N serve as held-out images for the critic-overfitting gauge when the source has no
  # held-out split of its own (docs/augmentation.md).
  config.data.limit = 0

  # Differentiable augmentation of every image the critic sees, for small data sets
  # (docs/augmentation.md; wgan_dist/algorithm/augment.py).
  config.augment = ml_collections.ConfigDict()
  # '' = off, or a comma list of names of the registry TRANSFORMS in
  # wgan_dist/algorithm/augment.py: 'translation', 'cutout', 'color' (3-channel data only).
  config.augment.policy = ''
  # Probability that each transform applies to each image, in [0, 1]; with augment.target > 0,
  # the value p starts from.
  config.augment.p = 1.0
  # Adaptive p: 0 = p fixed at augment.p; > 0 = every augment.interval generator steps, p moves
  # up when the critic-overfitting gauge r_v (eval/critic_overfit) is above this target and down
  # when below (needs held-out real images; docs/augmentation.md).
  config.augment.target = 0.0
  # Generator steps between adjustments of the adaptive p.
  config.augment.interval = 16
  # Speed of the adaptive p: thousands of real images shown (critic batches) for p to move by 1
  # (ADA's 500).
  config.augment.adjust_kimg = 500.0

  config.model = ml_collections.ConfigDict()
  # The generator and critic: a name of the registry ARCHITECTURES in
  # wgan_dist/models/architectures.py, whose docstring describes each and whose entries give the
  # (data.image_size, data.channels) each fits.
  config.model.architecture = 'seed'
  # Dimension of the standard-normal noise z.
  config.model.noise_dim = 100
  # Critic normalisation: 'layer' (per example, as the paper suggests) | 'none'.
  # 'batch' is refused: it couples the examples the gradient penalty treats as independent.
  config.model.critic_norm = 'layer'
  # Width unit: 'seed' uses 4b,2b,b generator and 2b..16b critic channels (b=64 is exact
  # seed); 'dcgan' uses the paper's DIM = b.
  config.model.base_filters = 64
  # Class-conditional training: the number of classes (labels 0..num_classes-1 from the data
  # source); 0 = unconditional (the default: nothing below applies).
  config.model.num_classes = 0
  # How a conditional critic uses the label: a name of the registry CONDITIONINGS in
  # wgan_dist/algorithm/conditioning.py (the paper's 'acgan', an auxiliary classifier head whose
  # cross-entropy is added to both losses with train.acgan_*_weight, is the default).
  # The generator always gets class-conditional batch norm (an embedding joined to z in 'seed').
  config.model.conditioning = 'acgan'
  # How the seed critic's conv1-conv3 are computed (same variables, same results up to
  # rounding): 'patch_matmul' (one matmul of the patches: several times faster on CPUs,
  # BENCHMARKS.md) | 'conv' (Conv2D, i.e. cuDNN on GPUs) | 'auto' ('conv' when the job uses GPUs,
  # else 'patch_matmul'; resolved once, and checked to be the same on every worker).
  config.model.conv_impl = 'auto'

  config.train = ml_collections.ConfigDict()
  # Global batch m (split evenly across replicas; must divide by the replica count).
  config.train.global_batch_size = 64
  # Critic updates per generator update, each on a fresh real batch.
  config.train.n_critic = 5
  # Gradient-penalty weight lambda.
  config.train.gp_lambda = 10.0
  # Adam for both networks (the critic's learning rate, and the generator's unless set below).
  config.train.learning_rate = 1e-4
  # The generator's learning rate; 0 = train.learning_rate (two time-scale updates, TTUR,
  # when they differ). train.lr_decay applies to both.
  config.train.generator_learning_rate = 0.0
  config.train.beta1 = 0.0
  config.train.beta2 = 0.9
  # Adam's epsilon (Keras' default). With beta1 = 0 each update is about lr * g / |g|, so an
  # element whose gradient is within rounding of 0 still moves by up to lr; a larger epsilon
  # (e.g. 1e-3, as the replica-equivalence tests use) damps those moves.
  config.train.adam_epsilon = 1e-7
  # Learning-rate schedule: 'none' (constant) | 'linear' (to 0 at the last generator step,
  # as the paper's CIFAR-10 runs).
  config.train.lr_decay = 'none'
  # With lr_decay='linear': the fraction of the run's generator steps trained at the initial
  # rates before the linear decay to 0 begins (0 = decay from the first step).
  config.train.lr_decay_start = 0.0
  # Generator steps to train; -1 = derive from num_epochs (an epoch = every real image
  # through the critic once, i.e. dataset_size / (global_batch_size * n_critic) steps).
  config.train.num_steps = -1
  config.train.num_epochs = 50
  # At most this many generator steps per tf.function call (fewer host round trips).
  config.train.steps_per_loop = 50
  # Compile the critic's loss and gradients with XLA (the loop itself cannot be: XLA has no
  # kernel for the input iterator). Off by default: on CPUs XLA was many times slower
  # (BENCHMARKS.md); measure with `python -m wgan_dist.bench` before turning it on.
  config.train.jit_compile = False
  # Exponential moving average of the generator weights (decay per generator step); 0 = off.
  # Kept in checkpoints; samples and evaluation can use it.
  config.train.ema_decay = 0.0
  # Warm the average up: decay at generator step t is min(ema_decay, (1 + t) / (10 + t)), as
  # tf.train.ExponentialMovingAverage with num_updates; False = ema_decay from the first step.
  config.train.ema_warmup = True
  # model.conditioning='acgan': weights of the auxiliary classifier's cross-entropy in the
  # critic's loss (on real images) and in the generator's (on its fakes); the paper's code
  # uses 1 and 0.1.
  config.train.acgan_critic_weight = 1.0
  config.train.acgan_generator_weight = 0.1

  # The Keras dtype policy: a name of the registry PRECISIONS in wgan_dist/algorithm/precision.py
  # (float16 with dynamic loss scaling for Volta/Turing GPUs, bfloat16 for Ampere/Hopper). The
  # gradient penalty is formed in float32 under every policy.
  config.mixed_precision = 'float32'
  # mixed_float16 only: the dynamic loss scale's starting value (halved on each overflow).
  config.initial_loss_scale = 2.0**15
  # TensorFloat-32 for float32 matmuls and convolutions on Ampere/Hopper GPUs (10-bit mantissa
  # inputs, float32 accumulation). True = TensorFlow's default (on); False = full float32, as on
  # CPUs and older GPUs (docs/distributed.md, "Exactness").
  config.allow_tf32 = True

  config.distribution = ml_collections.ConfigDict()
  # 'auto' (several workers in TF_CONFIG: multi_worker; else all visible GPUs, else one
  # device) | 'one_device' | 'mirrored' | 'multi_worker' (MultiWorkerMirroredStrategy over the
  # TF_CONFIG cluster; launch/ has scripts).
  config.distribution.strategy = 'auto'
  # N > 0 splits the CPU into N logical devices (multi-replica runs without GPUs); 0 = off.
  config.distribution.cpu_replicas = 0
  # multi_worker: a worker that sends no heartbeat for this long counts as lost, and the others
  # stop with an error naming it (also the bound on waiting for all workers to start).
  config.distribution.peer_timeout_secs = 60
  # How gradients are summed across replicas: a name of the registry ALL_REDUCES in
  # wgan_dist/dist/devices.py, whose entries say which strategies take each; 'auto' is resolved
  # once for this worker's devices and checked to be the same on every worker. Ignored by
  # one_device.
  config.distribution.all_reduce = 'auto'
  # Let TensorFlow take GPU memory as it needs it instead of (nearly) all of it at start-up:
  # for GPUs shared with other processes (not applied to a GPU split into logical devices);
  # False = TensorFlow's default (faster allocation).
  config.distribution.gpu_memory_growth = False
  # A training call or periodic action (log, sample, evaluation, save, stop agreement) that has
  # not returned after max(this, 10x the slowest call of its kind so far per step, 2x the first
  # call of its kind; 3x this for the first call) ends the process with exit status 3 and a
  # line naming it: a worker stuck outside the collectives (e.g. a hung read of shared storage)
  # would otherwise hold every other worker for ever.
  config.distribution.step_timeout_secs = 600.0
  # After SIGTERM or SIGINT the run finishes its call in flight and saves; if it has not ended
  # this long after the signal, or after the deadline of the call then in flight (a slow call is
  # not cut short), it exits unsaved, saying so.
  config.distribution.stop_grace_secs = 120.0

  # Intervals in generator steps of the periodic actions (wgan_dist/training/actions.py); each
  # also runs at the last step, and 0 turns it off (a run with checkpoint_every_steps=0 saves
  # only when a signal stops it before its last training call).
  config.log_every_steps = 100
  config.sample_every_steps = 500
  config.checkpoint_every_steps = 1000
  # Generator steps [first, last) to trace with the TensorFlow profiler into workdir/profile
  # (TensorBoard's Profile tab); (0, 0) = off.
  config.profile_steps = (0, 0)
  # Checkpoints kept in workdir/checkpoints.
  config.max_checkpoints_to_keep = 3

  # Evaluation (FID-style Frechet distance, KID, precision / recall, classifier score, class
  # histogram) of num_eval_samples generated images against held-out real images, every
  # eval_every_steps generator steps and at the last step; 0 = off.
  config.eval_every_steps = 1000
  config.num_eval_samples = 1000
  # MNIST's real reference (wgan_dist/eval/reference.py): 'heldout' = images the generator never
  # trains on (the embedded sample's 1,000 held-out digits, then left out of training; full
  # MNIST's test split) | 'train_full' = images of its training data (the generator trains on
  # all 5,000 embedded digits, the reference among them).
  config.eval_reference = 'heldout'
  # Noise draws per evaluation: every figure is the mean over this many independent draws of
  # num_eval_samples images (TensorBoard's eval/* curves), and eval/<metric>_std their
  # standard deviation when > 1. Draw 0 is the same noise in every evaluation of a run.
  config.eval_seeds = 1
  # RGB data (CIFAR-10, CelebA): path of locally available InceptionV3 weights for Inception
  # FID / Inception Score ('' = no Inception evaluation; MNIST uses its own classifier).
  config.eval_inception_weights = ''
  return config


def shrink_for_tests(config: ml_collections.ConfigDict, *, base_filters: int,
                     noise_dim: int) -> None:
  """The 'tiny' variants: narrow models, batch 8, 4 steps that log, sample and save every 2, no EMA."""
  config.model.base_filters = base_filters
  config.model.noise_dim = noise_dim
  config.train.global_batch_size = 8
  config.train.n_critic = 2
  config.train.num_steps = 4
  config.train.steps_per_loop = 2
  config.log_every_steps = 2
  config.sample_every_steps = 2
  config.checkpoint_every_steps = 2
  config.eval_every_steps = 0
  config.train.ema_decay = 0.0  # Tests that want an EMA turn it on themselves.
