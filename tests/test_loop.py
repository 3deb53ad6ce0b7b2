"""The loop's seams: a critic step and a generator step called alone, the trainer's metrics and
status apart, the actions' schedules and loop-call boundaries, and throughput without actions."""

import ast
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tests.conftest import REPO_ROOT
from wgan_dist.training import controller
from wgan_dist.dist import distribution
from wgan_dist.training import monitoring
from wgan_dist.training import profile_action
from wgan_dist.training import schedules
from wgan_dist.data import sources
from wgan_dist.algorithm import steps
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib


def _trainer(config):
  config = config.copy_and_resolve_references()
  config.distribution.strategy = 'one_device'
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  return trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                             source=sources.load_source(config))


def _values(model) -> list[np.ndarray]:
  return [variable.numpy() for variable in model.trainable_variables]


def _changed(before: list[np.ndarray], model) -> list[bool]:
  return [not np.array_equal(a, b) for a, b in zip(before, _values(model))]


def test_one_critic_step_changes_only_the_critic(tiny_config):
  trainer = _trainer(tiny_config)
  state = trainer.state
  generator_before, critic_before = _values(state.generator), _values(state.critic)
  critic_step = tf.function(trainer.critic_step)
  metrics = critic_step(next(trainer.iterator), tf.constant(0, tf.int64), tf.constant(0))
  assert set(metrics) == set(steps.CRITIC_METRICS) | {steps.SKIPPED}
  assert all(np.isfinite(float(value)) for value in metrics.values()), metrics
  assert float(metrics['critic_grad_norm']) > 0 and float(metrics[steps.SKIPPED]) == 0
  assert any(_changed(critic_before, state.critic))
  assert not any(_changed(generator_before, state.generator))
  assert int(state.critic_optimizer.iterations) == 1
  assert int(state.generator_optimizer.iterations) == 0
  assert int(state.step.numpy()) == 0  # Counting steps is the trainer's job.


def test_one_generator_step_changes_only_the_generator(tiny_config):
  trainer = _trainer(tiny_config)
  state = trainer.state
  generator_before, critic_before = _values(state.generator), _values(state.critic)
  metrics = tf.function(trainer.generator_step)(tf.constant(0, tf.int64))
  assert set(metrics) == set(steps.GENERATOR_METRICS) | {steps.SKIPPED}
  assert all(np.isfinite(float(value)) for value in metrics.values()), metrics
  assert any(_changed(generator_before, state.generator))
  assert not any(_changed(critic_before, state.critic))
  assert int(state.generator_optimizer.iterations) == 1
  assert int(state.critic_optimizer.iterations) == 0


def test_train_returns_metrics_and_loop_status_apart(tiny_config):
  trainer = _trainer(tiny_config)
  metrics, status = trainer.train(2)
  assert set(metrics) == set(steps.METRICS)  # Only measurements; no loop control in them.
  assert all(isinstance(value, float) and np.isfinite(value) for value in metrics.values())
  assert status == trainer_lib.LoopStatus(steps_run=2, nonfinite_step=None)
  assert int(trainer.state.step.numpy()) == 2
  assert int(trainer.state.critic_optimizer.iterations) == 2 * tiny_config.train.n_critic


def test_every_is_due_at_multiples_and_the_last_step():
  every = schedules.Every(3, 10)
  assert [step for step in range(11) if every.is_due(step)] == [0, 3, 6, 9, 10]
  assert [every.next_due(step) for step in (0, 2, 3, 8, 9, 10)] == [3, 3, 6, 9, 10, None]
  at = schedules.AtSteps((5, 7))
  assert [at.next_due(step) for step in (0, 5, 6, 7)] == [5, 7, 7, None]
  assert schedules.AfterEveryCall().next_due(4) is None and schedules.AfterEveryCall().is_due(4)


def _record_run(actions_list, first_step=0, last_step=10, steps_per_loop=4):
  calls, step = [], [first_step]

  def train(num_steps: int) -> int:
    calls.append(num_steps)
    step[0] += num_steps
    return step[0]

  reached = controller.run(train, actions_list, first_step=first_step, last_step=last_step,
                        steps_per_loop=steps_per_loop)
  return calls, reached


def test_loop_calls_end_at_the_nearest_due_action():
  ran = []

  def record(name):
    return lambda step: ran.append((name, step))

  calls, reached = _record_run([
      controller.Action('log', schedules.Every(3, 10), record('log')),
      controller.Action('stop', schedules.AfterEveryCall(), record('stop')),
      controller.Action('profile', schedules.AtSteps((5, 7)), record('profile'), at_start=True)])
  # Boundaries 3 (log), 5 (profile), 6 (log), 7 (profile), 9 (log), 10 (last step); never more
  # than steps_per_loop=4 per call.
  assert calls == [3, 2, 1, 1, 2, 1] and reached == 10
  assert [step for name, step in ran if name == 'log'] == [3, 6, 9, 10]
  assert [step for name, step in ran if name == 'profile'] == [0, 5, 7]  # 0: at_start.
  assert [step for name, step in ran if name == 'stop'] == [3, 5, 6, 7, 9, 10]
  # A resumed run continues from its step; a finished one makes no call.
  assert _record_run([], first_step=8)[0] == [2]
  assert _record_run([], first_step=10) == ([], 10)


def test_profile_boundaries_are_the_same_on_every_role(tmp_path):
  """Every worker must call the trainer (whose steps are collectives) with the same sizes; a
  profile boundary that only the chief respected would deadlock a multi-worker run."""
  chief = profile_action.Profiler((3, 5), str(tmp_path / 'profile'), is_chief=True)
  worker = profile_action.Profiler((3, 5), str(tmp_path / 'profile'), is_chief=False)
  assert chief.schedule == worker.schedule == schedules.AtSteps((3, 5))
  runs = [_record_run([controller.Action('log', schedules.Every(4, 10), lambda step: None),
                       controller.Action('profile', profiler.schedule, lambda step: None)])
          for profiler in (chief, worker)]
  assert runs[0] == runs[1] == ([3, 1, 1, 3, 2], 10)
  off = profile_action.Profiler((0, 0), str(tmp_path), is_chief=True)
  assert off.schedule == schedules.AtSteps(())


def test_throughput_counts_only_timed_training_calls(tmp_path):
  monitor = monitoring.Monitor(str(tmp_path), total_steps=10, images_per_step=16)
  metrics = {name: 1.0 for name in steps.METRICS}
  monitor.accumulate(metrics, 2, None)  # The tracing call: not timed.
  monitor.accumulate(metrics, 4, 2.0)  # 4 steps in 2 s of training, whatever ran in between.
  monitor.log(6)
  monitor.accumulate(metrics, 1, None)
  monitor.log(7)  # Nothing timed in this window: no throughput.
  monitor.close()
  assert helpers.event_scalars(str(tmp_path), 'perf/steps_per_sec') == {6: 2.0}
  assert helpers.event_scalars(str(tmp_path), 'perf/images_per_sec') == {6: 32.0}
  assert helpers.event_scalars(str(tmp_path), 'train/critic_loss') == {6: 1.0, 7: 1.0}


@pytest.mark.parametrize('module', ['resnet', 'dcgan64', 'layers'])
def test_architecture_modules_do_not_import_the_registry(module):
  # models/architectures.py imports them; an import back would be a cycle.
  with open(os.path.join(REPO_ROOT, 'wgan_dist', 'models', f'{module}.py'), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              for alias in node.names}
  assert 'architectures' not in imported
