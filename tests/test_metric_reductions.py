"""A training call reduces its metrics across replicas once, after its last step: nothing in the
loop's body waits for the replicas' metrics (which would drain the devices every critic update),
and the call still names the first non-finite step. (That the metrics themselves are unchanged is
what tests/test_loop.py, test_replica_invariance.py and test_multi_worker.py check.)

Counted on the real strategy (2 logical CPU replicas, TensorFlow's ReductionToOneDevice, which
MirroredStrategy also uses for every reduction to the host): its reduce and gather are wrapped to
count each tensor they handle, by the graph it is traced into (a while loop's body or not), and
then run as usual. The gradients' all-reduces (one per variable per update) and the generator's
synchronised batch norm stay: they are the algorithm.
"""

import collections

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import ops  # pylint: disable=g-direct-tensorflow-import

from configs import mnist
from wgan_dist.dist import distribution
from wgan_dist.data import sources
from wgan_dist.algorithm import steps
from wgan_dist.training import state as train_state
from wgan_dist.training import trainer as trainer_lib

_REDUCTION = tf.distribute.ReductionToOneDevice


def _count_reductions(monkeypatch) -> collections.Counter:
  """(in a loop body?, 'scalar' | 'tensor' | 'gather') -> count, filled while tracing."""
  counts = collections.Counter()

  def where() -> bool:
    return 'while_body' in ops.get_default_graph().name

  reduce, gather = _REDUCTION.reduce_implementation, _REDUCTION._gather_implementation  # pylint: disable=protected-access

  def counted_reduce(self, reduce_op, per_replica_value, destinations, options):
    # The batch reduce calls this once per tensor.
    rank = per_replica_value.values[0].shape.rank
    counts[(where(), 'scalar' if rank == 0 else 'tensor')] += 1
    return reduce(self, reduce_op, per_replica_value, destinations, options)

  def counted_gather(self, per_replica_value, destinations, axis, options):
    counts[(where(), 'gather')] += 1
    return gather(self, per_replica_value, destinations, axis, options)

  monkeypatch.setattr(_REDUCTION, 'reduce_implementation', counted_reduce)
  monkeypatch.setattr(_REDUCTION, '_gather_implementation', counted_gather)
  return counts


def test_the_loop_reduces_no_metric_per_step_and_gathers_once_per_call(monkeypatch):
  config = mnist.get_config('tiny')
  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'],
                                            cross_device_ops=_REDUCTION())
  state = train_state.create_train_state(config, strategy)
  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                                source=sources.load_source(config))
  counts = _count_reductions(monkeypatch)
  trainer.loop.get_concrete_function(trainer.iterator, tf.TensorSpec([], tf.int32))
  # Before: each critic update reduced its 4 metrics and its skip flag to the host, and each
  # generator update its 2 and its flag: 5 * n_critic + 3 scalar reductions per generator step.
  assert counts[(True, 'scalar')] == 0, counts
  assert counts[(True, 'gather')] == 0, counts
  assert counts[(True, 'tensor')] > 0, counts  # The gradients: still all-reduced every update.
  # After the loop: one gather of every replica's totals and first non-finite step.
  assert {what: count for (in_loop, what), count in counts.items() if not in_loop} == {
      'gather': 1}, counts


def _trainer(config, replicas: int) -> trainer_lib.Trainer:
  config = config.copy_and_resolve_references()
  config.distribution.cpu_replicas = replicas
  config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  return trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                             source=sources.load_source(config))


@pytest.mark.slow
@pytest.mark.parametrize('replicas', [1, 2])
def test_a_call_names_the_first_non_finite_step_as_one_step_calls_do(tiny_config, replicas):
  """The metrics reach the host only after the call, which runs all its steps (on broken
  weights after the first bad one); the step it names is still the first non-finite one, as
  calls of one step each find it, counted from where the call started."""
  tiny_config.train.learning_rate = 1e30  # The weights overflow at once.
  one_at_a_time = _trainer(tiny_config, replicas)
  for _ in range(20):
    _, status = one_at_a_time.train(1)
    if status.nonfinite_step is not None:
      break
  first, first_metrics = status.nonfinite_step, status.nonfinite_metrics
  assert first is not None and first == int(one_at_a_time.state.step.numpy())
  assert first_metrics and set(first_metrics) <= set(steps.METRICS)
  whole = _trainer(tiny_config, replicas)
  metrics, status = whole.train(20)
  # Every step after the first bad one is bad too: the last one would say 20. The metrics named
  # are that first step's, not those of the call's means (which the broken steps after it fill
  # with NaN).
  assert status == trainer_lib.LoopStatus(steps_run=20, nonfinite_step=first,
                                          nonfinite_metrics=first_metrics)
  assert int(whole.state.step.numpy()) == 20
  assert not all(np.isfinite(value) for value in metrics.values())

  later = _trainer(tiny_config, replicas)
  later.state.step.assign(5)  # A call that starts at step 5: its first step is step 6.
  status = later.train(3)[1]
  assert (status.steps_run, status.nonfinite_step) == (3, 6) and status.nonfinite_metrics
