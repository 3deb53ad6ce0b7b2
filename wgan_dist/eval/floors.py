"""What real digits score against the MNIST evaluation reference: the floors of both
config.eval_reference choices (wgan_dist/eval/reference.py).

  python -m wgan_dist.eval.floors        # a line per reference, then one line of JSON

The reference is the embedded sample's 1,000 held-out digits. Disjoint 1,000-image samples of
the digits the generator trains on are scored against it, one figure per sample, then the mean
and the standard deviation over samples, for FID, KID and precision/recall (on the classifier's
features, as the evaluation computes them):
- 'heldout': the 4,000 train-split digits, in the split's shuffled order (4 samples; the first
  is classifier.held_out_report's real_fid_floor);
- 'train_full': all 5,000 digits in a fixed seed-0 order (5 samples, each holding about 200 of
  the reference digits): what a generator that reproduced its training data would score.
A generator's figure on 1,000 samples cannot be expected below its reference's floor.
"""

import json

from wgan_dist.config import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import keras  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position

from wgan_dist.data import sources  # pylint: disable=wrong-import-position
from wgan_dist.eval import classifier  # pylint: disable=wrong-import-position
from wgan_dist.eval import kid  # pylint: disable=wrong-import-position
from wgan_dist.eval import metrics  # pylint: disable=wrong-import-position
from wgan_dist.eval import precision_recall  # pylint: disable=wrong-import-position
from wgan_dist.eval import reference  # pylint: disable=wrong-import-position

# Seed of the order of all 5,000 digits the 'train_full' samples are cut from.
_ORDER_SEED = 0


def _disjoint_samples(rows: np.ndarray, num: int) -> list[np.ndarray]:
  """`rows` cut into as many disjoint runs of `num` as it holds, in order."""
  return [rows[start:start + num] for start in range(0, len(rows) - num + 1, num)]


def real_floors(model: keras.Model, num: int = classifier.FLOOR_SAMPLES) -> dict:
  """{reference name: {'num', 'num_reference', 'samples', 'fid' (one per sample), 'fid_mean',
  'fid_std', and the same for 'kid' (KID's mean over its subsets, eval/kid.py), 'precision'
  and 'recall' (k = 3, eval/precision_recall.py)}} for 'heldout' and 'train_full' (module
  docstring); `model`: the classifier."""
  images, labels = sources.load_embedded_mnist()
  train, held_out = classifier.embedded_split_indices(labels)
  features, _ = classifier.feature_model(model).predict(classifier.to_model_range(images),
                                                        batch_size=500, verbose=0)
  reference_features = features[held_out]
  everything = np.random.default_rng(_ORDER_SEED).permutation(len(images))
  floors = {}
  for name, rows in ((reference.HELDOUT, train), (reference.TRAIN_FULL, everything)):
    figures = {'fid': [], 'kid': [], 'precision': [], 'recall': []}
    for sample in _disjoint_samples(rows, num):
      figures['fid'].append(
          metrics.frechet_distance_of_features(features[sample], reference_features))
      figures['kid'].append(kid.kernel_inception_distance(features[sample],
                                                          reference_features)[0])
      precision, recall = precision_recall.precision_recall(features[sample],
                                                            reference_features)
      figures['precision'].append(precision)
      figures['recall'].append(recall)
    floors[name] = {'num': num, 'num_reference': len(held_out),
                    'samples': len(figures['fid']), **figures}
    for metric, values in figures.items():
      floors[name][f'{metric}_mean'] = float(np.mean(values))
      floors[name][f'{metric}_std'] = float(np.std(values, ddof=1))
  return floors


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  floors = real_floors(classifier.load_classifier())
  for name, floor in floors.items():
    print(f"eval_reference={name!r}: {floor['samples']} disjoint samples of {floor['num']} "
          f"real digits vs the {floor['num_reference']} reference digits, mean ± std over "
          'samples:')
    for metric, digits in (('fid', 2), ('kid', 4), ('precision', 3), ('recall', 3)):
      print(f"  {metric}: {floor[metric + '_mean']:.{digits}f} ± "
            f"{floor[metric + '_std']:.{digits}f} ("
            + ', '.join(f'{value:.{digits}f}' for value in floor[metric]) + ')')
  print(json.dumps(floors, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
