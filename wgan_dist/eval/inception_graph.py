"""The 2015 Inception network of TTUR's FID and the original Inception Score, from its frozen
graph: pool_3 features (2048) and the 1008-way softmax.

Papers' FIDs (TTUR's `fid.py`, StyleGAN's metrics, StudioGAN) and Inception Scores (Salimans et
al.'s `inception_score.py`) all use one network: `classify_image_graph_def.pb`, inside the
`inception-2015-12-05.tgz` archive that TTUR's `fid.py` downloads from
GRAPH_URL. Nothing here downloads it: fetch the archive once on a machine with internet
(GET_GRAPH), copy the .pb file over, and set
`eval_inception_graph=/path/classify_image_graph_def.pb`.

Loading: the file is parsed into a `tf.compat.v1.GraphDef` and imported with
`tf.graph_util.import_graph_def` inside `tf.compat.v1.wrap_function`, its input
`ExpandDims:0` mapped to a float32 [N, H, W, 3] placeholder of any batch size, and the wrapped
function pruned to the two outputs; devices the file names are cleared, so the network runs
on whichever replica calls it (the evaluator calls it inside `strategy.run`, one replica's
slice at a time). No Keras weights are involved.

Feeding, as TTUR feeds it: the images' uint8 pixel values 0-255 as float32 (the evaluator's
images are already quantised to that grid, protocol.py), grayscale replicated to three
channels, at their own size: the graph resizes to 299x299 itself (its `ResizeBilinear`) and
normalises ((x - 128) / 128).

Outputs: `pool_3:0` [N, 1, 1, 2048] squeezed to [N, 2048] (FID, KID, precision / recall,
density / coverage), and the Inception Score's softmax computed as Salimans et al.'s
`inception_score.py` computes it: pool_3 times the weights of `softmax/logits/MatMul` (the
graph's own `softmax` node reshapes to a batch of one), softmax over the 1008 outputs, no bias,
as every published Inception Score was computed.

Tests use a small fabricated GraphDef with the same tensor names and shapes
(tests/test_inception_graph.py).
"""

from typing import Callable

import numpy as np
import tensorflow as tf

from wgan_dist.config import validation as config_validation
from wgan_dist.eval import protocol as protocol_lib

INPUT_TENSOR = 'ExpandDims:0'  # float32 [1, H, W, 3] in the file: TTUR feeds its batches here.
POOL_TENSOR = 'pool_3:0'  # [N, 1, 1, 2048]
LOGITS_MATMUL = 'softmax/logits/MatMul'  # Its second input: the [2048, 1008] logit weights.
NUM_FEATURES = 2048
NUM_CLASSES = 1008
GRAPH_FILE = 'classify_image_graph_def.pb'
GRAPH_URL = 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz'
GET_GRAPH = (f'on a machine with internet: wget {GRAPH_URL}; tar -xzf inception-2015-12-05.tgz '
             f'{GRAPH_FILE} (the archive TTUR\'s fid.py downloads), then copy {GRAPH_FILE} here')
NAME = f'Inception 2015 frozen graph ({GRAPH_FILE}) pool_3 ({NUM_FEATURES} features)'
RESIZE = 'the graph\'s own ResizeBilinear to 299x299'
FEED = 'uint8 pixel values 0-255 as float32, as TTUR feeds it'


class InceptionGraphError(config_validation.ConfigError):
  """eval_inception_graph names no file, or one that is not the 2015 Inception graph."""


def _error(path: str, reason: str) -> InceptionGraphError:
  return InceptionGraphError(f'eval_inception_graph={path!r} {reason}; expected {GRAPH_FILE}: '
                             f'get it {GET_GRAPH}')


def load_graph(path: str) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
  """The network of the file at `path`: float32 pixels [N, H, W, 3] in [0, 255] ->
  (pool_3 [N, 2048], softmax [N, 1008]); InceptionGraphError (one line) for a bad file."""
  if not path or not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise _error(path, 'is not an existing file')
  graph_def = tf.compat.v1.GraphDef()
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      graph_def.ParseFromString(f.read())
  except Exception as error:  # pylint: disable=broad-except
    raise _error(path, f'is not a GraphDef ({type(error).__name__})') from error
  names = {node.name for node in graph_def.node}
  missing = [name for name in (INPUT_TENSOR.split(':')[0], POOL_TENSOR.split(':')[0],
                               LOGITS_MATMUL) if name not in names]
  if missing:
    raise _error(path, f'has no node {missing[0]!r}')
  for node in graph_def.node:
    node.device = ''  # Run where the caller runs (each replica), not where the file says.

  def imported(pixels):
    pool, = tf.graph_util.import_graph_def(graph_def, input_map={INPUT_TENSOR: pixels},
                                           return_elements=[POOL_TENSOR], name='inception')
    weights = tf.compat.v1.get_default_graph().get_operation_by_name(
        f'inception/{LOGITS_MATMUL}').inputs[1]
    features = tf.reshape(pool, [-1, NUM_FEATURES])
    return features, tf.nn.softmax(tf.matmul(features, weights))

  wrapped = tf.compat.v1.wrap_function(
      imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
  try:
    function = wrapped.prune(wrapped.inputs[0], wrapped.outputs)
    out = function(tf.zeros([2, 8, 8, 3]))
  except Exception as error:  # pylint: disable=broad-except
    reason = ' '.join(str(error).split())[:200]
    raise _error(path, f'does not run ({type(error).__name__}: {reason})') from error
  shapes = [tuple(t.shape) for t in out]
  if shapes != [(2, NUM_FEATURES), (2, NUM_CLASSES)]:
    raise _error(path, f'gives outputs of shapes {shapes[0][1:]} and {shapes[1][1:]}, not '
                       f'({NUM_FEATURES},) and ({NUM_CLASSES},)')
  return function


class GraphFeatures:
  """images [N, H, W, C] in [-1, 1] (C = 1 or 3, quantised) -> (pool_3 features [N, 2048],
  softmax [N, 1008]), called as the evaluator calls a Keras feature model."""

  def __init__(self, path: str):
    self.path = path
    self._network = load_graph(path)

  def __call__(self, images: tf.Tensor, training: bool = False):
    del training  # A frozen graph has no training mode.
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[-1] == 1:
      images = tf.concat([images] * 3, axis=-1)
    # The uint8 pixel values of the images (protocol.quantise's grid): what TTUR feeds.
    pixels = tf.round((protocol_lib.quantise(images) + 1.0) * 127.5)
    return self._network(pixels)


def to_pixels_numpy(images: np.ndarray) -> np.ndarray:
  """float images in [-1, 1] -> their float32 uint8 pixel values (tests feed the graph these)."""
  return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
      np.float32)
