"""`Evaluator(config, strategy)`: scores a generator against real images.

    evaluator = Evaluator(config, strategy)        # real features computed once, here
    evaluation = evaluator.evaluate(generator)      # everything it measured:
    evaluation.scalars                              #  MNIST {'eval/fid', 'eval/kid',
                                                    #  'eval/precision', 'eval/recall',
                                                    #  'eval/density', 'eval/coverage',
                                                    #  'eval/classifier_score',
                                                    #  'eval/min_class_share'} (conditional:
                                                    #  + 'eval/conditional_accuracy',
                                                    #  'eval/intra_fid'); Inception
                                                    #  {'eval/fid', 'eval/kid', 'eval/precision',
                                                    #  'eval/recall', 'eval/density',
                                                    #  'eval/coverage', 'eval/inception_score'}
    evaluation.class_histogram                      #  MNIST class shares [10]; Inception None
    evaluation.class_fids                           #  conditional MNIST: FID per class [10]
    evaluation.all_scalars()                        #  scalars + eval/<metric>_std (several
                                                    #  noise draws) + eval/class_share_<k>
    evaluation.protocol, evaluation.report()        #  what it was measured on; JSON of it all
    evaluator.memorisation(generator)               #  nearest-training-image distances

KID (kid.py), improved precision / recall (precision_recall.py, k = 3) and density / coverage
(density_coverage.py, k = 5) are computed on the same features as FID, for both backbones.
Metrics on the generated images themselves (image_metrics.py) run on each replica's batch in
the same pass. `Evaluator(..., protocol=PAPER)`: 50,000 samples against the whole test or
training split, the score over 10 splits. With config.eval_reference_stats the real side
comes from a file (reference_stats.py); `save_reference_stats` writes one. For non-MNIST data,
config.eval_inception_graph (the 2015 Inception graph, inception_graph.py) is preferred over
eval_inception_weights (Keras's InceptionV3).

Two backbones (`backbone_name`), chosen by the data:
- 'mnist': MNIST (a data.source of MNIST's digits, MNIST_SOURCES; 28x28x1) is scored with the
  project's own digit classifier (wgan_dist/eval/classifier.py) against the real images
  config.eval_reference names (wgan_dist/eval/reference.py; by default 1,000 held-out digits
  the generator never trained on), offline, whatever eval_inception_weights says.
- 'inception': any other RGB or grayscale data, when `eval_inception_weights` names a local
  InceptionV3 weights file (wgan_dist/eval/inception.py): FID on the 2048 pool features and the
  Inception Score over the 1000 ImageNet classes. Class shares over 1000 classes say little
  about mode coverage, so there is no histogram. The real images (`reference_images`) are
  num_eval_samples images preprocessed exactly as training preprocesses them: for
  data.source='cifar10' the first ones of the CIFAR-10 test split (cached with the data set);
  otherwise a fixed seed-0 random subset of the training source (for 'folder', of its sorted
  file list), which training also sees: FID against training images, as is usual for CelebA.
Without a backbone `Evaluator` raises `UnsupportedEvaluation` naming the reason (and how to set
the weights); `make_evaluator` logs it once and returns None.

Generation is distributed: each call of the replica function draws one *global* batch of noise
(`train.global_batch_size` rows) from a stateless key of (config.seed, batch index, draw,
random_keys.EVAL_NOISE), every replica generates, quantises (protocol.py: uint8 as a saved PNG)
and embeds its own slice, and only the features and probabilities are gathered, in global
order; images never leave their replica, so 50,000 samples stream through in global batches.
So the images, and the metrics, are the same for any replica count, and every evaluation
of a run sees the same noise (changes between evaluations are the generator's, not the draw's).
With config.eval_seeds = K (or `evaluate(..., seeds=K)`), draws 0..K-1 are scored and the
figures are their means, with standard deviations; draw 0 is the noise of a one-draw
evaluation. The reference images are quantised the same way (a no-op for uint8 data).
Under MultiWorkerMirroredStrategy the gather is a collective: every worker must call `evaluate`
(only the chief should write the results).

Class-conditional generators (model.num_classes = K > 0; Keras models with inputs [z, label]):
global example i of an evaluation asks for label i mod K, with the same z as above. So the
labels are balanced (classes differ by at most one sample when num_samples is not a multiple
of K), every evaluation sees the same (z, label) pairs, and they do not depend on the replica
count. The MNIST backbone then also logs
- 'eval/conditional_accuracy': the share of samples the digit classifier assigns to the label
  they were generated for. A generator that obeys its labels perfectly with real-looking digits
  scores about the classifier's own held-out accuracy (0.969), not 1.
- 'eval/intra_fid': the mean over the 10 digits of the Fréchet distance between that digit's
  samples (num_samples / 10 of them, 100 by default) and that digit's 100 held-out real images
  (all the embedded split holds). From 100 images per side a 64x64 covariance is poorly
  estimated, and the estimate is biased upwards by roughly O(1/n) in the per-class count n: two
  real 100-image samples of one digit (100 train-split vs the 100 held-out images) score 14.3
  on average over the digits (from 7.2 to 35.7 by digit; 13.5 to 14.3 over four disjoint
  train-split samples): that is intra-FID's floor (`classifier.held_out_report`,
  'real_intra_fid_floor'), against 4.23 for the unconditional FID of 1,000 vs 1,000 images
  (which itself scores 36 on 100 vs 100 mixed digits). So intra-FID is not comparable with FID;
  compare it with its floor, and only between evaluations with the same num_eval_samples.
  The per-class distances are `Evaluation.class_fids`.
The MNIST evaluation needs K = 10 (the classifier's digits) and num_eval_samples >= 2K (a
covariance per class), checked when the Evaluator is built. The Inception backbone generates
conditional samples the same way and keeps its two metrics: no conditional accuracy (ImageNet's
classes are not the data's) and no intra-FID: it would need the reference images' labels (the
Inception reference is an unlabelled, unbalanced subset today), and with ~100 images per class
against 2048 features it would be dominated by that small-sample bias.
"""

import dataclasses
import math
import os
import pickle
from typing import Callable, Iterator, Optional

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from wgan_dist.config import validation as config_validation
from wgan_dist.data import input_pipeline
from wgan_dist.algorithm import precision
from wgan_dist.algorithm import random_keys
from wgan_dist.data import sources
from wgan_dist.eval import classifier as classifier_lib
from wgan_dist.eval import density_coverage
from wgan_dist.eval import inception as inception_lib
from wgan_dist.eval import image_metrics
from wgan_dist.eval import inception_graph
from wgan_dist.eval import kid as kid_lib
from wgan_dist.eval import memorisation as memorisation_lib
from wgan_dist.eval import metrics
from wgan_dist.eval import precision_recall
from wgan_dist.eval import protocol as protocol_lib
from wgan_dist.eval import reference as reference_lib
from wgan_dist.eval import reference_stats as reference_stats_lib

# The sources of MNIST's digits (the registry's entries with MNIST's classes).
MNIST_SOURCES = tuple(name for name, kind in sources.SOURCES.items()
                      if kind.class_names == sources.MNIST_CLASS_NAMES)
# On the features FID uses, for every backbone: KID (mean over subsets), improved precision and
# recall (k = 3), density and coverage (k = 5).
DISTRIBUTION_TAGS = ('eval/kid', 'eval/precision', 'eval/recall', 'eval/density',
                     'eval/coverage')
SCALAR_TAGS = ('eval/fid',) + DISTRIBUTION_TAGS + ('eval/classifier_score',
                                                   'eval/min_class_share')
# Added to SCALAR_TAGS for a class-conditional generator (MNIST backbone).
CONDITIONAL_SCALAR_TAGS = ('eval/conditional_accuracy', 'eval/intra_fid')
INCEPTION_SCALAR_TAGS = ('eval/fid',) + DISTRIBUTION_TAGS + ('eval/inception_score',)
# KID's standard deviation over its subsets (in an evaluation's JSON and record, not a curve).
KID_SUBSET_STD = 'eval/kid_subset_std'
# Suffix of a tag's standard deviation over noise draws (eval_seeds > 1), e.g. eval/fid_std.
STD_SUFFIX = '_std'
# The score's standard deviation over its splits (the paper protocol), in JSON and records:
# eval/inception_score_split_std (or eval/classifier_score_split_std for MNIST).
SCORE_TAGS = ('eval/inception_score', 'eval/classifier_score')
SPLIT_STD_SUFFIX = '_split_std'
# Seed of the fixed subset of training images that is the Inception reference.
REFERENCE_SEED = 0
# Evaluation protocols: DEFAULT (num_eval_samples against the config's reference, the score in
# one split) and PAPER (`evaluate --protocol=paper`: PAPER_NUM_SAMPLES samples against the
# whole test split or training split, the score as mean ± std over PAPER_SCORE_SPLITS splits).
DEFAULT, PAPER = 'default', 'paper'
PROTOCOLS = (DEFAULT, PAPER)
PAPER_NUM_SAMPLES = 50_000
PAPER_SCORE_SPLITS = 10


class UnsupportedEvaluation(ValueError):
  """The config's data have no evaluation backbone (yet)."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Everything one `Evaluator.evaluate` call measured."""
  scalars: dict[str, float]  # The evaluator's scalar_tags, in that order.
  class_histogram: Optional[np.ndarray]  # MNIST: each class's share of the samples [10]; else None.
  num_samples: int
  # Conditional MNIST: the Fréchet distance of each class [10] (their mean is eval/intra_fid).
  class_fids: Optional[np.ndarray] = None
  # KID's standard deviation over its subsets (mean over the draws).
  kid_subset_std: float = 0.0
  # The classifier / Inception Score's standard deviation over its splits (the paper protocol's
  # ten; 0 for one split), mean over the draws.
  score_split_std: float = 0.0
  # With several noise draws: `scalars` are their means; the scalars of each draw, in order,
  # and each tag's standard deviation over the draws ({} for one draw).
  per_draw: tuple[dict[str, float], ...] = ()
  stds: dict[str, float] = dataclasses.field(default_factory=dict)
  # What the figures were measured on (Evaluator.protocol plus this evaluation's counts).
  protocol: dict = dataclasses.field(default_factory=dict)

  def all_scalars(self) -> dict[str, float]:
    """`scalars`, eval/<metric>_std over noise draws (more than one draw) and, with a
    histogram, eval/class_share_<k> (the training loop's names; TensorBoard shows the shares
    as eval_class_share/<k>, training/dashboards.py)."""
    return {**self.scalars, **{tag + STD_SUFFIX: std for tag, std in self.stds.items()},
            **class_share_scalars(self.class_histogram)}

  def report(self) -> dict:
    """Everything measured, JSON-ready: scalars, KID's subset spread, stds over draws, the
    class histogram and per-class FIDs when measured, and the protocol."""
    out = {**self.scalars, KID_SUBSET_STD: self.kid_subset_std,
           **{tag + STD_SUFFIX: std for tag, std in self.stds.items()}}
    score_tag = next((tag for tag in SCORE_TAGS if tag in self.scalars), None)
    if score_tag and self.protocol.get('score_splits', 1) > 1:
      out[score_tag + SPLIT_STD_SUFFIX] = self.score_split_std
    if self.class_histogram is not None:
      out['eval/class_histogram'] = [float(v) for v in self.class_histogram]
    if self.class_fids is not None:
      out['eval/class_fids'] = [float(v) for v in self.class_fids]
    if len(self.per_draw) > 1:
      out['per_draw'] = [dict(draw) for draw in self.per_draw]
    return {**out, 'protocol': dict(self.protocol)}


def backbone_name(config: ml_collections.ConfigDict) -> Optional[str]:
  """'mnist', 'inception' or None (no backbone for these data): see the module docstring."""
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  if shape == classifier_lib.IMAGE_SHAPE and config.data.source in MNIST_SOURCES:
    return 'mnist'
  if ((config.get('eval_inception_graph') or config.eval_inception_weights)
      and config.data.channels in (1, 3)):
    return 'inception'
  return None


def unsupported_reason(config: ml_collections.ConfigDict) -> Optional[str]:
  """Why `config` cannot be evaluated, or None when it can."""
  if backbone_name(config):
    return None
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  got = f'data.source={config.data.source!r} with images {shape}'
  if config.data.channels not in (1, 3):
    return f'evaluation needs RGB or grayscale images; got {got}'
  return (f'{got} needs the Inception evaluation: set --config.eval_inception_graph='
          f'/path/{inception_graph.GRAPH_FILE} (the standard network; get it '
          f'{inception_graph.GET_GRAPH}) or --config.eval_inception_weights='
          f'/path/{inception_lib.WEIGHTS_FILE} (get it {inception_lib.GET_WEIGHTS}); without '
          f'either only MNIST is scored (data.source in {MNIST_SOURCES}, 28x28x1 images)')


def conditional_error(config: ml_collections.ConfigDict) -> Optional[str]:
  """Why a class-conditional `config` cannot be evaluated (module docstring), or None."""
  num_classes = int(config.model.num_classes)
  if not num_classes or backbone_name(config) != 'mnist':
    return None
  if num_classes != classifier_lib.NUM_CLASSES:
    return (f'model.num_classes={num_classes} is not allowed with the MNIST evaluation; '
            f'allowed: 0 (unconditional) or {classifier_lib.NUM_CLASSES} (its classifier\'s '
            'digits)')
  if config.num_eval_samples < 2 * num_classes:
    return (f'num_eval_samples={config.num_eval_samples} is not allowed with '
            f'model.num_classes={num_classes}; allowed: >= {2 * num_classes} (intra-FID fits a '
            'covariance to each class\'s samples)')
  return None


def eval_labels(batch_index: tf.Tensor, global_batch: int, num_classes: int) -> tf.Tensor:
  """int32 [global_batch]: the labels of one evaluation batch, global example i asking for
  i mod num_classes (module docstring)."""
  first = tf.cast(batch_index, tf.int64) * global_batch
  return tf.cast(tf.math.floormod(first + tf.range(global_batch, dtype=tf.int64), num_classes),
                 tf.int32)


def _cifar10_test_images() -> Optional[np.ndarray]:
  """CIFAR-10's 10,000 test images, uint8 [N, 32, 32, 3], when keras.datasets cached them.

  Read from the cache directly: keras.datasets.cifar10.load_data would download when the
  cache is missing, and the evaluation never touches the network.
  """
  root = os.path.join(os.environ.get('KERAS_HOME', os.path.expanduser('~/.keras')), 'datasets')
  # Keras 3 extracts into cifar-10-batches-py-target/; older versions into cifar-10-batches-py/.
  for path in (os.path.join(root, 'cifar-10-batches-py-target', 'cifar-10-batches-py',
                            'test_batch'),
               os.path.join(root, 'cifar-10-batches-py', 'test_batch')):
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        batch = pickle.load(f, encoding='bytes')  # The data set's own format (as Keras reads it).
      return np.asarray(batch[b'data'], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return None


@dataclasses.dataclass(frozen=True)
class Reference:
  """The real images generated ones are compared with, and what they are."""
  # float32 [N, H, W, C] in [-1, 1]; None when they come as `chunks` (the paper protocol's
  # whole training split) or not at all (statistics read from eval_reference_stats).
  images: Optional[np.ndarray]
  # Which images, in words a record can carry: e.g. 'embedded_mnist held-out (100 per digit)'.
  split: str
  # Whether none of them is among `memorisation_train_images` (memorisation needs that).
  held_out: bool
  # images=None: a function of a chunk size giving the images chunk by chunk (float32 in
  # [-1, 1]), so a whole training split is never held at once.
  chunks: Optional[Callable[[int], Iterator[np.ndarray]]] = None
  size: Optional[int] = None  # With `chunks`: how many images they give.

  def iter_chunks(self, chunk: int) -> Iterator[np.ndarray]:
    if self.images is None:
      yield from self.chunks(chunk)
    else:
      for start in range(0, len(self.images), chunk):
        yield self.images[start:start + chunk]


def _streamed(subset: sources.Source, config: ml_collections.ConfigDict
              ) -> Callable[[int], Iterator[np.ndarray]]:
  """The images of `subset` through the training pipeline's preprocessing, `chunk` at a time:
  the first subset.size positions of its stream (its first epoch, each image once)."""
  unlabelled = config.copy_and_resolve_references()
  unlabelled.model.num_classes = 0

  def chunks(chunk: int) -> Iterator[np.ndarray]:
    chunk = min(chunk, subset.size)
    dataset = input_pipeline.make_dataset(subset, unlabelled, batch_size=chunk)
    left = subset.size
    for batch in dataset.take(math.ceil(subset.size / chunk)):
      yield batch.numpy()[:left]  # The last batch reaches into the second epoch: cut there.
      left -= chunk
  return chunks


def _inception_reference(config: ml_collections.ConfigDict,
                         source: Optional[sources.Source], whole: bool = False) -> Reference:
  """num_eval_samples real images for the Inception backbone (module docstring); `whole`
  (the paper protocol): all of the test split or of the training source, streamed."""
  num = int(config.num_eval_samples)
  if whole:
    test_images = _cifar10_test_images() if config.data.source == 'cifar10' else None
    if test_images is not None:
      subset = sources.Source('cifar10_test', images=test_images)
      split, held_out = f'cifar10 test (all {subset.size})', True
    else:
      subset = source if source is not None else sources.load_source(config)
      split, held_out = f'{subset.name} training images (all {subset.size})', False
    logging.info('Inception reference (paper protocol): %s', split)
    return Reference(None, split, held_out, chunks=_streamed(subset, config), size=subset.size)
  test_images = _cifar10_test_images() if config.data.source == 'cifar10' else None
  held_out = test_images is not None
  if test_images is not None:
    subset = sources.Source('cifar10_test', images=test_images[:num])
    logging.info('Inception reference: the first %d CIFAR-10 test images', subset.size)
    split = f'cifar10 test (first {subset.size})'
  else:
    if source is None:
      source = sources.load_source(config)
    chosen = np.sort(np.random.default_rng(REFERENCE_SEED).choice(
        source.size, min(num, source.size), replace=False))
    subset = source.subset(chosen)  # Labels, when the source has them, stay aligned.
    logging.info('Inception reference: a fixed random %d of the %d training images of %s',
                 subset.size, source.size, source.name)
    split = (f'{source.name} training images (fixed seed-{REFERENCE_SEED} random {subset.size} '
             f'of {source.size})')
  if subset.size < num:
    logging.warning('Inception reference: only %d real images for num_eval_samples=%d',
                    subset.size, num)
  # The training pipeline's preprocessing (crop, resize, [-1, 1]); its first epoch is a
  # permutation of the subset, so one batch of subset.size images holds each image once.
  # Images only: the unconditional pipeline (a conditional one would add labels).
  return Reference(_preprocessed(subset, config), split, held_out)


def _preprocessed(subset: sources.Source, config: ml_collections.ConfigDict) -> np.ndarray:
  """The images of `subset` through the training pipeline's preprocessing, float32 in [-1, 1]."""
  unlabelled = config.copy_and_resolve_references()
  unlabelled.model.num_classes = 0
  return input_pipeline.preprocessed(subset, unlabelled)[0]


def reference(config: ml_collections.ConfigDict,
              source: Optional[sources.Source] = None, protocol: str = DEFAULT) -> Reference:
  """The real images generated ones are compared with, and their split's name.

  MNIST: the reference config.eval_reference names (eval/reference.py; by default the
  embedded sample's 1,000 held-out digits, seen by neither the classifier nor the generator,
  or full MNIST's test split). Inception: see the module docstring;
  `source` is the training source when the caller has loaded it already (else loaded here).
  protocol=PAPER: Inception's reference is the whole test split (CIFAR-10) or training source;
  MNIST's is the same as by default (the data's test split, or the embedded held-out digits).
  """
  if backbone_name(config) == 'inception':
    return _inception_reference(config, source, whole=protocol == PAPER)
  mnist = reference_lib.mnist_reference(config, source and source.name)
  # Disjoint from the train split memorisation compares with; with eval_reference='train_full'
  # the generator trained on them, so they do not count as held out.
  return Reference(classifier_lib.to_model_range(mnist.images),
                   f'{mnist.split} ({mnist.size} images, '
                   f'{"trained on" if mnist.trained_on else "never trained on"})',
                   held_out=not mnist.trained_on)


def reference_images(config: ml_collections.ConfigDict,
                     source: Optional[sources.Source] = None) -> np.ndarray:
  """`reference(config, source).images`: float32 [N, H, W, C] in [-1, 1]."""
  return reference(config, source).images


# Training images memorisation is measured against, at most this many (the Inception backbone
# embeds each one through InceptionV3).
MEMORISATION_TRAIN_IMAGES = 10000


def memorisation_train_images(config: ml_collections.ConfigDict,
                              source: Optional[sources.Source] = None) -> np.ndarray:
  """Training images for `Evaluator.memorisation`, float32 [N, H, W, C] in [-1, 1].

  Under data.limit: the images the run trained on (`reference.trained_on`), all of them up to
  MEMORISATION_TRAIN_IMAGES, not the whole split they were limited from: copies of images the
  generator never saw are no copies. Else MNIST: the embedded sample's train split (4,000
  images; the held-out reference is the rest); Inception: a fixed seed-1 random subset of at
  most MEMORISATION_TRAIN_IMAGES of the training source, preprocessed as training does.
  """
  if backbone_name(config) != 'inception' and not config.data.limit:
    return classifier_lib.to_model_range(classifier_lib.embedded_split().train_images)
  if source is None:
    source = sources.load_source(config)
  if config.data.limit:
    source = reference_lib.trained_on(config, source)
  return sampled_images(source, config)


def sampled_images(source: sources.Source, config: ml_collections.ConfigDict) -> np.ndarray:
  """A fixed seed-1 random subset of at most MEMORISATION_TRAIN_IMAGES images of `source`,
  float32 [N, H, W, C] in [-1, 1], preprocessed as training does (all of a small source, e.g.
  the images a data.limit run trained on)."""
  chosen = np.sort(np.random.default_rng(REFERENCE_SEED + 1).choice(
      source.size, min(MEMORISATION_TRAIN_IMAGES, source.size), replace=False))
  return _preprocessed(source.subset(chosen), config)


def _backbone(config: ml_collections.ConfigDict,
              inception_size: int = inception_lib.IMAGE_SIZE) -> keras.Model:
  """images in [-1, 1] -> (features, class probabilities); build under a strategy scope."""
  name = backbone_name(config)
  if name is None:
    raise UnsupportedEvaluation(unsupported_reason(config))
  if name == 'inception' and config.get('eval_inception_graph'):
    if config.eval_inception_weights:
      logging.info('Inception evaluation: the 2015 graph %s; eval_inception_weights unused',
                   config.eval_inception_graph)
    return inception_graph.GraphFeatures(config.eval_inception_graph)
  if name == 'inception':
    return inception_lib.feature_model(
        inception_lib.load_inception(config.eval_inception_weights, inception_size),
        (config.data.image_size, config.data.image_size, config.data.channels))
  if config.eval_inception_weights or config.get('eval_inception_graph'):
    logging.info('MNIST data: scored with the MNIST classifier; the Inception network unused')
  return classifier_lib.feature_model(classifier_lib.load_classifier())


def class_share_scalars(histogram: Optional[np.ndarray]) -> dict[str, float]:
  """{'eval/class_share_<k>': share} for TensorBoard scalars; {} without a histogram."""
  if histogram is None:
    return {}
  return {f'eval/class_share_{k}': float(share) for k, share in enumerate(histogram)}


class Evaluator:
  """Fréchet distance and classifier (or Inception) score of a generator (module docstring).

  `source`: the training source, when the caller has loaded it (the Inception reference is drawn
  from it; loaded again otherwise). `inception_size`: the side images are resized to for
  InceptionV3; 299 except in tests, which use a smaller network to stay fast. `protocol`:
  DEFAULT or PAPER (PROTOCOLS). With config.eval_reference_stats the real side is read from
  that file (reference_stats.py) instead of embedding the reference images.
  """

  def __init__(self, config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy, *,
               source: Optional[sources.Source] = None,
               inception_size: int = inception_lib.IMAGE_SIZE, protocol: str = DEFAULT):
    self._strategy = strategy
    self._config = config
    self._source = source
    self._seed = int(config.seed)
    if protocol not in PROTOCOLS:
      raise config_validation.ConfigError(f'protocol={protocol!r} is not allowed; allowed: '
                                          f'{", ".join(PROTOCOLS)}')
    self.protocol_name = protocol
    # Noise draws per evaluation (mean and std over them); 1 in configs from before the field.
    self.seeds = int(config.get('eval_seeds', 1))
    if self.seeds < 1:
      raise config_validation.ConfigError(f'eval_seeds={self.seeds} is not allowed; allowed: '
                                          'an integer >= 1')
    self._noise_dim = int(config.model.noise_dim)
    self._global_batch = int(config.train.global_batch_size)
    config_validation.validate_replicas(config, strategy.num_replicas_in_sync)
    self._per_replica = self._global_batch // strategy.num_replicas_in_sync
    self.num_samples = PAPER_NUM_SAMPLES if protocol == PAPER else int(config.num_eval_samples)
    # The classifier / Inception Score: one split, or the paper's mean ± std over ten.
    self.score_splits = PAPER_SCORE_SPLITS if protocol == PAPER else 1
    self.backbone = backbone_name(config)
    self.num_classes = int(config.model.num_classes)
    error = conditional_error(config)
    if error:  # Before the backbone and the real features, the costly part.
      raise config_validation.ConfigError(error)
    stats_path = str(config.get('eval_reference_stats', '') or '')
    # A bad statistics file is one line before the network is even built.
    stats = reference_stats_lib.load(stats_path) if stats_path else None
    with strategy.scope(), precision.policy_scope('float32'):
      self._features = _backbone(config, inception_size)
    self.scalar_tags = INCEPTION_SCALAR_TAGS if self.backbone == 'inception' else SCALAR_TAGS
    # Intra-FID needs the real images' classes: MNIST's held-out labels, in reference order.
    self._intra_fid = bool(self.num_classes) and self.backbone == 'mnist'
    # InceptionV3's activations at 299x299 take ~30 MB per image, and these chunks all run on
    # one device (the first GPU): one replica's batch at a time, the load each GPU carries in
    # generation. A global batch scaled for 8 GPUs could run that one out of memory.
    self.reference_batch_size = self._per_replica if self.backbone == 'inception' else 500
    network = self._describe_network(config, inception_size)
    if stats is not None:
      reference_stats_lib.check(stats, stats_path, network, self._feature_size())
      self._from_stats(stats, stats_path)
    else:
      self.reference = reference(config, source, protocol)
      if self.backbone == 'mnist':  # Kept in statistics files too (a conditional run needs them).
        self._real_labels = reference_lib.mnist_reference(config, source and source.name).labels
      # Real images see the generated images' quantisation (a no-op for uint8 data).
      self._real_features = self._embed_chunks(
          protocol_lib.quantise_numpy(chunk)
          for chunk in self.reference.iter_chunks(self.reference_batch_size))
      self.num_real = len(self._real_features)
      self.real_statistics = metrics.statistics(self._real_features)
    if self._intra_fid:
      self.scalar_tags += CONDITIONAL_SCALAR_TAGS
    if self._real_features is None:  # Statistics only: FID and the score.
      self.scalar_tags = tuple(tag for tag in self.scalar_tags if tag not in DISTRIBUTION_TAGS)
      self._real_radii = None
    else:
      # Density and coverage's balls depend on the reference alone: computed once.
      self._real_radii = density_coverage.real_radii(self._real_features)
    self._train_features: Optional[np.ndarray] = None  # Memorisation's, computed when asked.
    self.protocol = {**network, **self._describe_reference(stats_path)}
    # One traced function per generator (the live one, an EMA copy); the generator is kept
    # alongside so its id cannot be reused by another object.
    self._functions: dict[int, tuple[keras.Model, Callable]] = {}
    # Metrics on the generated images themselves (image_metrics.py), in the same pass.
    self._image_metrics = image_metrics.active(config)
    self.scalar_tags += tuple(metric.tag for metric in self._image_metrics)

  def _from_stats(self, stats: reference_stats_lib.ReferenceStats, path: str) -> None:
    """The real side from a statistics file (reference_stats.py), already checked."""
    self._real_features = stats.features
    self.real_statistics = (stats.mu, stats.sigma)
    made = stats.protocol or {}
    self.num_real = int(made.get('num_reference') or
                        (len(stats.features) if stats.features is not None else 0))
    split = made.get('reference_split', 'unknown images (a mu/sigma-only file)')
    self.reference = Reference(None, f'{split}; statistics from {path}',
                               held_out=bool(made.get('reference_held_out', False)))
    if self._intra_fid:
      if stats.labels is None or stats.features is None:
        raise reference_stats_lib.ReferenceStatsError(
            f'eval_reference_stats={path!r} has no reference labels and features; '
            f'model.num_classes={self.num_classes} needs them for intra-FID: make it with '
            'python -m wgan_dist.evaluate --reference_stats=OUT.npz and this config')
      self._real_labels = stats.labels

  def _feature_size(self) -> int:
    if isinstance(self._features, inception_graph.GraphFeatures):
      return inception_graph.NUM_FEATURES
    return int(self._features.outputs[0].shape[-1])

  def _embed(self, images: np.ndarray) -> np.ndarray:
    """Features [N, D] of real images (float32 in [-1, 1], quantised), a chunk at a time."""
    chunk = self.reference_batch_size
    return self._embed_chunks(images[start:start + chunk]
                              for start in range(0, len(images), chunk))

  def _embed_chunks(self, chunks: Iterator[np.ndarray]) -> np.ndarray:
    """Features [N, D] of chunks of real images, concatenated."""
    parts = [self._features(chunk, training=False)[0].numpy() for chunk in chunks]
    return np.concatenate(parts).astype(np.float32, copy=False)

  def _describe_network(self, config: ml_collections.ConfigDict, inception_size: int) -> dict:
    """The network part of every figure's protocol (protocol.py): what a statistics file must
    share with the evaluation that reads it."""
    size = (int(config.data.image_size), int(config.data.image_size), int(config.data.channels))
    gray = ', gray replicated to RGB' if size[2] == 1 else ''
    feed = None
    if isinstance(self._features, inception_graph.GraphFeatures):
      weights = str(config.eval_inception_graph)
      extractor = inception_graph.NAME
      resize = inception_graph.RESIZE + gray
      feed = inception_graph.FEED
    elif self.backbone == 'inception':
      weights = str(config.eval_inception_weights)
      extractor = (f'InceptionV3 {inception_lib.FEATURE_LAYER} '
                   f'({inception_lib.NUM_FEATURES} features)')
      resize = f'bilinear {size[0]}x{size[1]} -> {inception_size}x{inception_size}' + gray
    else:
      weights = classifier_lib.WEIGHTS_PATH
      extractor = f'MNIST classifier {classifier_lib.FEATURE_LAYER} (64 features)'
      resize = 'none'
    return {
        'feature_extractor': extractor,
        'feature_weights': weights,
        'feature_weights_sha256': protocol_lib.file_sha256(weights),
        'image_size': list(size),
        'resize': resize,
        **({'feed': feed} if feed else {}),
        'quantisation': protocol_lib.QUANTISATION,
    }

  def _describe_reference(self, stats_path: str) -> dict:
    """The rest of the fixed protocol: reference, metric settings, seed."""
    return {
        'protocol': self.protocol_name,
        'num_reference': int(self.num_real),
        'reference_split': self.reference.split,
        'reference_held_out': bool(self.reference.held_out),
        'reference_stats': stats_path or None,
        'kid': f'unbiased MMD², (x.y/d + 1)^3, {kid_lib.NUM_SUBSETS} subsets',
        'precision_recall_k': precision_recall.NEIGHBOURS,
        'density_coverage_k': density_coverage.NEIGHBOURS,
        'score_splits': self.score_splits,
        'seed': self._seed,
    }

  def save_reference_stats(self, path: str) -> str:
    """Writes this evaluator's real side to `path` (reference_stats.py); returns the path."""
    if self._real_features is None:
      raise ValueError('this evaluator read its statistics from a file without features')
    protocol = {key: self.protocol[key] for key in reference_stats_lib.CHECKED_FIELDS +
                ('feature_weights', 'num_reference', 'reference_split', 'reference_held_out',
                 'protocol')}
    return reference_stats_lib.save(path, *self.real_statistics, self._real_features,
                                    getattr(self, '_real_labels', None), protocol)

  def _function_for(self, generator: keras.Model) -> Callable:
    entry = self._functions.get(id(generator))
    if entry is None:
      strategy, per_replica = self._strategy, self._per_replica
      global_batch, num_classes = self._global_batch, self.num_classes

      def replica_fn(batch_index, draw):
        # Draw 0 is the noise of every evaluation; draws 1.. are further independent ones.
        noise = tf.random.stateless_normal(
            [global_batch, self._noise_dim],
            seed=random_keys.key(self._seed, batch_index, draw, random_keys.EVAL_NOISE))
        z = random_keys.replica_slice(noise, per_replica)
        labels = None
        if num_classes:
          # Sliced like z, so each example keeps its (z, label) pair on any replica count.
          labels = random_keys.replica_slice(
              eval_labels(batch_index, global_batch, num_classes), per_replica)
        images = protocol_lib.quantise(generator(z if labels is None else [z, labels],
                                                 training=False))
        features, probabilities = self._features(images, training=False)
        # The image metrics' per-image values, from this replica's batch (image_metrics.py).
        measured = tuple(tf.cast(metric.per_image(images), tf.float32)
                         for metric in self._image_metrics)
        return (features, probabilities) + measured + (() if labels is None else (labels,))

      @tf.function
      def generate_and_classify(batch_index, draw):
        # Features, probabilities and, for a conditional generator, the labels it was given.
        # Images stay on their replica: only features and probabilities leave it.
        outputs = strategy.run(replica_fn, args=(batch_index, draw))
        return tuple(strategy.gather(value, axis=0) for value in outputs)

      entry = self._functions[id(generator)] = (generator, generate_and_classify)
    return entry[1]

  def labelled_outputs(self, generator: keras.Model, num_samples: Optional[int] = None,
                       draw: int = 0) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(features, class probabilities, labels) of the first N evaluation samples of noise draw
    `draw`: MNIST [N, 64] and [N, 10], Inception [N, 2048] and [N, 1000]; the int32 labels [N]
    the generator was given (conditional), else None.

    Streams: one global batch at a time is generated and embedded on the replicas, and only
    its features, probabilities and labels are kept (written into arrays of N rows), so 50,000
    samples never exist as images at once."""
    features, probabilities, labels, _ = self._outputs(generator, self._checked_num(num_samples),
                                                      draw)
    return features, probabilities, labels

  def _checked_num(self, num_samples: Optional[int]) -> int:
    num = int(num_samples or self.num_samples)
    if num < 2:
      raise ValueError(f'num_samples={num}: a covariance needs at least 2 samples')
    if self._intra_fid and num < 2 * self.num_classes:
      raise ValueError(f'num_samples={num}: intra-FID needs at least 2 samples per class, '
                       f'>= {2 * self.num_classes}')
    return num

  def _outputs(self, generator: keras.Model, num: int, draw: int
               ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], dict[str, np.ndarray]]:
    """`labelled_outputs` and {image metric tag: its per-image values [N, ...]}."""
    columns = self._columns(generator, num, draw)
    measured = {metric.tag: columns[2 + i] for i, metric in enumerate(self._image_metrics)}
    return columns[0], columns[1], (columns[-1] if self.num_classes else None), measured

  def _columns(self, generator: keras.Model, num: int, draw: int) -> list[np.ndarray]:
    """[features, probabilities, each image metric's values, (labels)] of N samples."""
    function = self._function_for(generator)
    columns = None
    for index in range(math.ceil(num / self._global_batch)):
      values = [value.numpy() for value in function(tf.constant(index, tf.int64),
                                                    tf.constant(draw, tf.int64))]
      if columns is None:
        columns = [np.empty((num,) + value.shape[1:], value.dtype) for value in values]
      start = index * self._global_batch
      rows = min(self._global_batch, num - start)
      for column, value in zip(columns, values):
        column[start:start + rows] = value[:rows]
    return columns

  def outputs(self, generator: keras.Model, num_samples: Optional[int] = None,
              draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, class probabilities) of `labelled_outputs`."""
    features, probabilities, _ = self.labelled_outputs(generator, num_samples, draw)
    return features, probabilities

  def evaluate(self, generator: keras.Model, num_samples: Optional[int] = None,
               seeds: Optional[int] = None) -> Evaluation:
    """Scores `num_samples` (default config.num_eval_samples) images of `generator`, for each
    of `seeds` noise draws (default config.eval_seeds): the scalars are means over the draws,
    `stds` their standard deviations (ddof 1) when there are several.

    MNIST: scalars {'eval/fid', 'eval/kid', 'eval/precision', 'eval/recall', 'eval/density',
    'eval/coverage', 'eval/classifier_score', 'eval/min_class_share'} and the class histogram
    ([10], sums to 1); a conditional generator adds 'eval/conditional_accuracy' and
    'eval/intra_fid' (and the
    per-class distances, class_fids). Inception: {'eval/fid', 'eval/kid', 'eval/precision',
    'eval/recall', 'eval/density', 'eval/coverage', 'eval/inception_score'}, no histogram.
    Histogram and class FIDs are means over the draws too.
    """
    seeds = self.seeds if seeds is None else int(seeds)
    if seeds < 1:
      raise ValueError(f'seeds={seeds}: at least one noise draw')
    draws = [self._evaluate_draw(generator, num_samples, draw) for draw in range(seeds)]
    first = draws[0]
    tags = list(first.scalars)
    scalars = {tag: float(np.mean([d.scalars[tag] for d in draws])) for tag in tags}
    stds = ({tag: float(np.std([d.scalars[tag] for d in draws], ddof=1)) for tag in tags}
            if seeds > 1 else {})

    def mean_of(field: str) -> Optional[np.ndarray]:
      values = [getattr(d, field) for d in draws]
      return None if values[0] is None else np.mean(values, axis=0)

    protocol = {**self.protocol, 'num_generated': first.num_samples, 'noise_draws': seeds,
                'kid_subset_size': (kid_lib.subset_size(first.num_samples, self.num_real)
                                    if self._real_features is not None else None)}
    return Evaluation(scalars, mean_of('class_histogram'), first.num_samples,
                      mean_of('class_fids'),
                      kid_subset_std=float(np.mean([d.kid_subset_std for d in draws])),
                      score_split_std=float(np.mean([d.score_split_std for d in draws])),
                      per_draw=tuple(d.scalars for d in draws), stds=stds, protocol=protocol)

  def _evaluate_draw(self, generator: keras.Model, num_samples: Optional[int],
                     draw: int) -> Evaluation:
    """The figures of one noise draw (`evaluate` averages them)."""
    num = self._checked_num(num_samples)
    features, probabilities, labels, measured = self._outputs(generator, num, draw)
    if self._real_features is None:  # A mu/sigma statistics file.
      fid = metrics.frechet_distance(*metrics.statistics(features), *self.real_statistics)
    elif self.backbone == 'inception':
      # 2048 features: from the samples when fewer than 2048 (metrics module docstring).
      fid = metrics.frechet_distance_of_features(features, self._real_features)
    else:
      fid = metrics.frechet_distance(*metrics.statistics(features), *self.real_statistics)
    distribution, kid_std = {}, 0.0
    if self._real_features is not None:
      kid, kid_std, _ = kid_lib.kernel_inception_distance(features, self._real_features)
      precision, recall = precision_recall.precision_recall(features, self._real_features)
      density, coverage = density_coverage.density_coverage(
          features, self._real_features, squared_radii=self._real_radii)
      distribution = {'eval/kid': kid, 'eval/precision': precision, 'eval/recall': recall,
                      'eval/density': density, 'eval/coverage': coverage}
    # Same formula: exp E KL(p(y|x) || p(y)); over ImageNet's classes it is the Inception Score.
    # The paper protocol takes it over ten splits (mean, and the std in the report).
    score, score_std = metrics.split_scores(probabilities, self.score_splits)
    images = {metric.tag: float(metric.reduce(measured[metric.tag]))
              for metric in self._image_metrics}
    if self.backbone == 'inception':
      return Evaluation({'eval/fid': fid, **distribution, 'eval/inception_score': score,
                         **images}, None, num, kid_subset_std=kid_std, score_split_std=score_std)
    histogram = metrics.class_histogram(probabilities)
    scalars = {'eval/fid': fid, **distribution, 'eval/classifier_score': score,
               'eval/min_class_share': metrics.min_class_share(histogram)}
    class_fids = None
    if self._intra_fid:
      class_fids = metrics.class_frechet_distances(features, labels, self._real_features,
                                                   self._real_labels, self.num_classes)
      scalars['eval/conditional_accuracy'] = metrics.conditional_accuracy(probabilities, labels)
      scalars['eval/intra_fid'] = float(np.mean(class_fids))
    return Evaluation({**scalars, **images}, histogram, num, class_fids, kid_subset_std=kid_std,
                      score_split_std=score_std)

  def sample_images(self, generator: keras.Model, num: int, draw: int = 0) -> np.ndarray:
    """The first `num` samples of noise draw `draw`, quantised as the features see them:
    float32 [num, H, W, C] in [-1, 1]. Generated on this host, a global batch at a time (for
    showing a few samples; scoring streams through `labelled_outputs`)."""
    out = []
    for index in range(math.ceil(num / self._global_batch)):
      batch_index = tf.constant(index, tf.int64)
      z = tf.random.stateless_normal(
          [self._global_batch, self._noise_dim],
          seed=random_keys.key(self._seed, batch_index, draw, random_keys.EVAL_NOISE))
      inputs = (z if not self.num_classes else
                [z, eval_labels(batch_index, self._global_batch, self.num_classes)])
      out.append(protocol_lib.quantise(generator(inputs, training=False)).numpy())
    return np.concatenate(out)[:num]

  def train_images(self) -> np.ndarray:
    """`memorisation_train_images` of this evaluator's config (indices of
    `Memorisation.generated_nearest` point into it)."""
    return protocol_lib.quantise_numpy(memorisation_train_images(self._config, self._source))

  def memorisation(self, generator: keras.Model, num_samples: Optional[int] = None,
                   train_images: Optional[np.ndarray] = None
                   ) -> memorisation_lib.Memorisation:
    """Nearest-training-image distances of `num_samples` samples (noise draw 0) and of the
    reference images, in this evaluator's features (memorisation.py).

    `train_images` (float32 in [-1, 1]): default `memorisation_train_images(config)`, whose
    features are computed once. Raises UnsupportedEvaluation when the reference images are
    among the training images (no held-out set to compare with).
    """
    if not self.reference.held_out:
      raise UnsupportedEvaluation(
          f'memorisation needs reference images held out of training; the reference here is '
          f'{self.reference.split}')
    if train_images is not None:
      train_features = self._embed(protocol_lib.quantise_numpy(train_images))
    else:
      if self._train_features is None:
        self._train_features = self._embed(self.train_images())
      train_features = self._train_features
    features, _, _ = self.labelled_outputs(generator, num_samples)
    return memorisation_lib.memorisation(features, self._real_features, train_features)


def metric_tags(evaluator: Optional[Evaluator], with_ema: bool) -> list[str]:
  """The headline eval/* tags a run logs (and eval_ema/* with an EMA generator); [] without
  an evaluator. The HParams dashboard shows these as its metrics."""
  if evaluator is None:
    return []
  tags = list(evaluator.scalar_tags)
  return tags + ([tag.replace('eval/', 'eval_ema/', 1) for tag in tags] if with_ema else [])


def make_evaluator(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy, *,
                   source: Optional[sources.Source] = None) -> Optional[Evaluator]:
  """An Evaluator, or None (with a warning naming why) when the data have no backbone.

  A bad eval_inception_weights file raises inception.InceptionWeightsError (a ConfigError), a
  conditional config the MNIST evaluation cannot score a ConfigError (`conditional_error`).
  """
  reason = unsupported_reason(config)
  if reason:
    logging.warning('Evaluation off: %s', reason)
    return None
  return Evaluator(config, strategy, source=source)
