"""The benchmark runs the real loop on the tiny config and reports every key; no timing asserts."""

import json
import math
import os
import subprocess
import sys

import pytest

from wgan_dist.tools import benchmark
from wgan_dist.models import architectures as models

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAINING_KEYS = {'critic_steps_per_sec', 'images_per_sec', 'replicas', 'device',
                 'flops_per_critic_step', 'achieved_flops_per_sec', 'ceiling_flops_per_sec',
                 'ceiling_fraction', 'input_images_per_sec', 'input_headroom'}


def _critic_forward_flops(config) -> float:
  """Multiply-adds x 2 of the critic's convolutions and dense layer on one global batch."""
  _, critic = models.build_models(config)
  total = 0.0
  for layer in critic.layers:
    if hasattr(layer, 'kernel'):
      out = layer.output.shape[1:-1]  # Spatial dims (none for Dense).
      total += 2 * math.prod(out) * math.prod(layer.kernel.shape)
  return total * config.train.global_batch_size


def _check_figures(result: dict, replicas: int) -> None:
  assert TRAINING_KEYS <= set(result)
  assert result['replicas'] == replicas
  for key in TRAINING_KEYS - {'device', 'replicas'}:
    assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])
  assert result['images_per_sec'] == result['critic_steps_per_sec'] * result['global_batch_size']


@pytest.mark.slow
def test_bench_on_two_replicas(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.distribution.cpu_replicas = 2
  config.distribution.strategy = 'mirrored'
  _check_figures(benchmark.run(config, num_steps=1, warmup=0, ceiling_size=128), replicas=2)


def test_input_only_times_the_pipeline_alone(tiny_config):
  result = benchmark.run(tiny_config, num_steps=1, warmup=0, input_only=True)
  assert result['input_images_per_sec'] > 0
  assert 'critic_steps_per_sec' not in result


@pytest.mark.slow
def test_command_line_prints_a_table_then_the_json_line_with_the_baseline(tiny_config):
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
  completed = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.bench', '--config=configs/mnist.py:tiny', '--steps=1',
       '--warmup=1', '--baseline', '--ceiling_size=128'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
  lines = completed.stdout.strip().splitlines()
  assert any(line.startswith('critic updates/s') for line in lines)
  result = json.loads(lines[-1])
  _check_figures(result, replicas=1)
  assert result['baseline_critic_steps_per_sec'] > 0 and result['speedup_vs_baseline'] > 0
  # The count covers the loop bodies: a critic update is at least its three critic forward
  # passes (real, fake, interpolates), and less than twenty.
  forward = _critic_forward_flops(tiny_config)
  assert 3 * forward < result['flops_per_critic_update'] < 20 * forward
  n_critic = tiny_config.train.n_critic
  assert math.isclose(result['flops_per_critic_step'], result['flops_per_critic_update']
                      + result['flops_per_generator_update'] / n_critic)


@pytest.mark.slow
def test_a_conditional_config_benchmarks_with_the_baseline_and_the_input_pipeline(tiny_config):
  """Labels reach every part of the benchmark: the real loop, the naive eager loop (which
  generates for the real labels and scores the AC-GAN head) and the input timing."""
  config = tiny_config.copy_and_resolve_references()
  config.model.num_classes = 10
  config.model.conditioning = 'acgan'
  result = benchmark.run(config, num_steps=1, warmup=0, baseline=True, ceiling_size=128)
  _check_figures(result, replicas=1)
  assert result['baseline_critic_steps_per_sec'] > 0
  assert benchmark.run(config, num_steps=1, warmup=0, input_only=True)[
      'input_images_per_sec'] > 0
