"""The evaluator's per-batch hook for metrics on generated images (wgan_dist/eval/image_metrics.py),
through docs/extending.md's worked example, run as the doc writes it: the module's code block
is executed, and the metric it registers is computed by evaluators on one and two replicas and
compared with the same share computed in numpy on the evaluator's own samples."""

import os
import re
import types

import keras
import numpy as np
import pytest

from wgan_dist.dist import distribution
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.eval import image_metrics
from wgan_dist.models import architectures as models

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs',
                   'extending.md')
SECTION = '### Worked example: a metric on the images themselves'
NUM = 24


def _example_blocks() -> list[str]:
  with open(DOC, encoding='utf-8') as f:
    text = f.read()
  section = text[text.index(SECTION) + len(SECTION):]
  following = re.search(r'\n#+ ', section)  # The section ends at the next heading.
  section = section[:following.start()] if following else section
  return re.findall(r'```python\n(.*?)```', section, re.S)


@pytest.fixture
def example_metric():
  """The doc's module, executed as written; its registration undone afterwards."""
  module_code, import_line = _example_blocks()
  assert 'from wgan_dist.eval import saturation' in import_line
  module = types.ModuleType('wgan_dist.eval.saturation')
  code = compile(module_code, 'docs/extending.md (saturation.py)', 'exec')
  exec(code, module.__dict__)  # pylint: disable=exec-used
  yield module.SATURATED_PIXELS
  image_metrics.IMAGE_METRICS.pop(module.SATURATED_PIXELS.tag)


def _config(replicas: int):
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.num_eval_samples = NUM
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  return config


def test_the_docs_image_metric_runs_on_every_replica(example_metric):
  tag = example_metric.tag
  values = []
  for replicas in (1, 2):
    config = _config(replicas)
    strategy = distribution.create_strategy(config)
    evaluator = evaluator_lib.Evaluator(config, strategy)
    assert evaluator.scalar_tags[-1] == tag
    with strategy.scope():
      keras.utils.set_random_seed(0)
      generator, _ = models.build_models(config)
    evaluation = evaluator.evaluate(generator)
    # The same images, generated again on the host: the share in numpy.
    images = evaluator.sample_images(generator, NUM)
    want = float(np.mean(np.abs(images) >= 1.0))
    assert evaluation.scalars[tag] == pytest.approx(want, abs=1e-6)
    assert tag in evaluation.report()
    values.append(evaluation.scalars[tag])
  assert values[0] == pytest.approx(values[1], abs=1e-6)
  # A registered tag again, or one outside eval/, is refused with one line.
  with pytest.raises(ValueError, match='saturated_pixels'):
    image_metrics.register(example_metric)
  with pytest.raises(ValueError, match="'train/x' is not allowed"):
    image_metrics.register(image_metrics.ImageMetric('train/x', lambda images: images))


def test_an_evaluator_without_image_metrics_logs_none():
  config = _config(1)
  evaluator = evaluator_lib.Evaluator(config, distribution.create_strategy(config))
  assert evaluator.scalar_tags == evaluator_lib.SCALAR_TAGS
