"""The 2015 Inception frozen graph path (wgan_dist/eval/inception_graph.py), offline.

The real classify_image_graph_def.pb (95 MB) is not downloaded here: a small GraphDef is
fabricated with the same tensor names and shapes (an `ExpandDims` input of [1, H, W, 3] float
pixels, the graph's own ResizeBilinear to 299 and (x - 128) / 128, `pool_3` [1, 1, 1, 2048],
`pool_3/_reshape` to a batch of one, `softmax/logits/MatMul` with [2048, 1008] weights and a
bias, `softmax`), so loading, feeding, batching over replicas and the protocol record run as
they would on the real file. The Fréchet distance and the Inception Score formula are checked
against float64 references on fixed arrays.
"""

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from wgan_dist.dist import distribution
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import inception_graph
from wgan_dist.eval import metrics
from wgan_dist.models import architectures as models

NUM = 16


def _fabricated_graph_def() -> tf.compat.v1.GraphDef:
  rng = np.random.default_rng(0)
  graph = tf.Graph()
  with graph.as_default():
    pixels = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name='ExpandDims')
    resized = tf.compat.v1.image.resize_bilinear(pixels, [299, 299], name='ResizeBilinear')
    normalised = tf.multiply(tf.subtract(resized, 128.0, name='Sub'), 1 / 128.0, name='Mul')
    kernel = tf.constant(rng.normal(0, 0.5, (5, 5, 3, 16)).astype(np.float32))
    hidden = tf.nn.relu(tf.nn.conv2d(normalised, kernel, strides=4, padding='VALID'))
    pooled = tf.reduce_mean(hidden, axis=[1, 2], keepdims=True)  # [N, 1, 1, 16]
    widen = tf.constant(rng.normal(0, 1.0, (1, 1, 16, 2048)).astype(np.float32))
    pool3 = tf.nn.relu(tf.nn.conv2d(pooled, widen, strides=1, padding='VALID'), name='pool_3')
    # As in the real graph: the softmax head reshapes to a batch of one.
    flat = tf.reshape(pool3, [1, 2048], name='pool_3/_reshape')
    weights = tf.constant(rng.normal(0, 0.05, (2048, 1008)).astype(np.float32))
    logits = tf.matmul(flat, weights, name='softmax/logits/MatMul')
    bias = tf.constant(rng.normal(0, 1.0, (1008,)).astype(np.float32))
    tf.nn.softmax(tf.nn.bias_add(logits, bias, name='softmax/logits'), name='softmax')
  return graph.as_graph_def(), (kernel, widen, weights)


@pytest.fixture(scope='module')
def graph_path(tmp_path_factory):
  graph_def, _ = _fabricated_graph_def()
  path = tmp_path_factory.mktemp('inception') / inception_graph.GRAPH_FILE
  path.write_bytes(graph_def.SerializeToString())
  return str(path)


def _reference_network(pixels: np.ndarray):
  """The fabricated graph run as TTUR runs the real one: one image at a time fed to
  ExpandDims:0 in a v1 session; pool_3 and, as inception_score.py, softmax(pool_3 @ W)."""
  graph_def, _ = _fabricated_graph_def()
  pools, probabilities = [], []
  with tf.Graph().as_default() as graph:
    tf.graph_util.import_graph_def(graph_def, name='FID_Inception_Net')
    pool = graph.get_tensor_by_name('FID_Inception_Net/pool_3:0')
    weights = graph.get_operation_by_name('FID_Inception_Net/softmax/logits/MatMul').inputs[1]
    softmax = tf.nn.softmax(tf.matmul(tf.reshape(pool, [-1, 2048]), weights))
    with tf.compat.v1.Session(graph=graph) as session:
      for image in pixels:
        p, s = session.run([pool, softmax], {'FID_Inception_Net/ExpandDims:0': image[None]})
        pools.append(p.reshape(-1))
        probabilities.append(s[0])
  return np.array(pools), np.array(probabilities)


def test_loads_and_feeds_as_ttur(graph_path):
  features = inception_graph.GraphFeatures(graph_path)
  images = np.random.default_rng(1).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
  pool, probabilities = features(images)
  assert pool.shape == (5, 2048) and probabilities.shape == (5, 1008)
  np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)
  # Fed uint8 pixel values 0-255 (the images' PNG grid), a batch at once: the same as TTUR's
  # one-image-at-a-time session run of the graph.
  want_pool, want_probabilities = _reference_network(inception_graph.to_pixels_numpy(images))
  np.testing.assert_allclose(pool, want_pool, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(probabilities, want_probabilities, rtol=1e-4, atol=1e-7)
  # Grayscale is replicated to three channels.
  gray = images[..., :1]
  np.testing.assert_allclose(features(gray)[0], features(np.repeat(gray, 3, -1))[0], rtol=1e-6)


def test_bad_files_are_one_line(tmp_path, graph_path):
  with pytest.raises(inception_graph.InceptionGraphError, match='is not an existing file'):
    inception_graph.load_graph(str(tmp_path / 'missing.pb'))
  junk = tmp_path / 'junk.pb'
  junk.write_bytes(b'\x00not a graph' * 10)
  with pytest.raises(inception_graph.InceptionGraphError, match='is not a GraphDef|has no node'):
    inception_graph.load_graph(str(junk))
  other = tmp_path / 'other.pb'
  with tf.Graph().as_default() as graph:
    tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name='ExpandDims')
  other.write_bytes(graph.as_graph_def().SerializeToString())
  with pytest.raises(inception_graph.InceptionGraphError) as caught:
    inception_graph.load_graph(str(other))
  message = str(caught.value)
  assert "has no node 'pool_3'" in message and 'inception-2015-12-05.tgz' in message
  assert '\n' not in message


def _config(npz_path, graph: str, replicas: int = 1):
  from configs import cifar10  # pylint: disable=import-outside-toplevel
  config = cifar10.get_config('tiny')
  config.data.source, config.data.path = 'npz', str(npz_path)
  config.eval_inception_graph = graph
  config.num_eval_samples = NUM
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  return config


@pytest.mark.slow
def test_evaluator_on_one_and_two_replicas_and_protocol(graph_path, tmp_path):
  rng = np.random.default_rng(2)
  np.savez(tmp_path / 'x.npz', x=rng.integers(0, 256, (NUM + 8, 32, 32, 3), dtype=np.uint8))
  results = []
  for replicas in (1, 2):
    config = _config(tmp_path / 'x.npz', graph_path, replicas)
    strategy = distribution.create_strategy(config)
    evaluator = evaluator_lib.Evaluator(config, strategy)
    with strategy.scope():
      keras.utils.set_random_seed(1)
      generator, _ = models.build_models(config)
    features, probabilities = evaluator.outputs(generator)
    results.append((features, probabilities, evaluator.evaluate(generator)))
  (f1, p1, e1), (f2, p2, e2) = results
  assert f1.shape == (NUM, 2048) and p1.shape == (NUM, 1008)
  # Each replica embeds its own slice; gathered in global order, the same features.
  np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-8)
  assert tuple(e1.scalars) == evaluator_lib.INCEPTION_SCALAR_TAGS
  assert e1.scalars['eval/inception_score'] == pytest.approx(e2.scalars['eval/inception_score'],
                                                             rel=1e-5)
  # The generated images, fed as TTUR feeds them, give the evaluator's features.
  images = evaluator.sample_images(generator, NUM)
  want, want_p = _reference_network(inception_graph.to_pixels_numpy(images))
  np.testing.assert_allclose(f1, want, rtol=1e-4, atol=1e-4)
  assert e1.scalars['eval/inception_score'] == pytest.approx(
      metrics.classifier_score(want_p), rel=1e-4)
  protocol = e1.protocol
  with open(graph_path, 'rb') as f:
    assert protocol['feature_weights_sha256'] == hashlib.sha256(f.read()).hexdigest()
  assert protocol['feature_weights'] == graph_path
  assert protocol['feature_extractor'] == inception_graph.NAME
  assert 'classify_image_graph_def.pb' in protocol['feature_extractor']
  assert protocol['resize'] == inception_graph.RESIZE
  assert protocol['feed'] == inception_graph.FEED
  assert evaluator.num_real == NUM  # By default num_eval_samples of the 24 training images.
  # The paper protocol: every training image (no test split here), streamed in chunks, and
  # the same features as embedding them at once.
  paper = evaluator_lib.Evaluator(config, strategy, protocol=evaluator_lib.PAPER)
  assert paper.num_real == NUM + 8 and paper.protocol['reference_split'].endswith('(all 24)')
  assert paper.num_samples == 50_000 and paper.protocol['score_splits'] == 10
  whole = evaluator_lib.reference(config, protocol=evaluator_lib.PAPER)
  at_once = np.concatenate(list(whole.iter_chunks(NUM + 8)))
  assert at_once.shape == (NUM + 8, 32, 32, 3)
  # Each training image exactly once (in the stream's order).
  stored = np.load(tmp_path / 'x.npz')['x']
  streamed = inception_graph.to_pixels_numpy(at_once).astype(np.uint8)
  assert sorted(image.tobytes() for image in streamed) == sorted(
      image.tobytes() for image in stored)


def _frechet_float64_reference(mu1, sigma1, mu2, sigma2) -> float:
  """TTUR's formula with the matrix square root of Σ₁Σ₂ from its (non-symmetric)
  eigendecomposition, in float64: an independent route from metrics.py's symmetric one."""
  values, vectors = np.linalg.eig(sigma1 @ sigma2)
  root = (vectors * np.sqrt(values.astype(complex))) @ np.linalg.inv(vectors)
  return float(np.sum((mu1 - mu2)**2) + np.trace(sigma1 + sigma2) - 2 * np.trace(root).real)


def test_frechet_distance_against_a_float64_reference():
  rng = np.random.default_rng(5)
  a = rng.normal(size=(300, 12)).astype(np.float32)
  b = (rng.normal(0.3, 1.2, size=(250, 12)) @ rng.normal(size=(12, 12)) / 3).astype(np.float32)
  stats_a, stats_b = metrics.statistics(a), metrics.statistics(b)
  want = _frechet_float64_reference(*stats_a, *stats_b)
  assert metrics.frechet_distance(*stats_a, *stats_b) == pytest.approx(want, rel=1e-9)
  assert metrics.frechet_distance_of_features(a, b) == pytest.approx(want, rel=1e-9)
  # Fewer samples than dimensions: the samples' route, same value.
  c, d = a[:8], b[:9]
  assert metrics.frechet_distance_of_features(c, d) == pytest.approx(
      _frechet_float64_reference(*metrics.statistics(c), *metrics.statistics(d)), rel=1e-6)


def test_inception_score_splits_against_a_float64_reference():
  # Salimans et al.'s inception_score.py, transcribed: ten parts of rows
  # [i·N // 10, (i + 1)·N // 10), exp(mean KL(p(y|x) || p(y))) each, mean and np.std.
  rng = np.random.default_rng(6)
  logits = rng.normal(0, 3, size=(103, 1008))
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  scores = []
  for i in range(10):
    part = p[i * len(p) // 10:(i + 1) * len(p) // 10]
    kl = part * (np.log(part) - np.log(np.mean(part, 0, keepdims=True)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  mean, std = metrics.split_scores(p, 10)
  assert mean == pytest.approx(np.mean(scores), rel=1e-9)
  assert std == pytest.approx(np.std(scores), rel=1e-9)
  assert metrics.split_scores(p, 1) == (pytest.approx(metrics.classifier_score(p)), 0.0)
  # Known values: confident predictions spread evenly over K classes score K in every split.
  one_hot = np.eye(10)[np.arange(100) % 10]
  assert metrics.split_scores(one_hot, 10) == (pytest.approx(10.0), pytest.approx(0.0))
  with pytest.raises(ValueError, match='splits=11'):
    metrics.split_scores(p[:10], 11)
