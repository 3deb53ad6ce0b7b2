"""One dataset identity: fingerprints and counts for every source, of what the generator trains
on (after the held-out split and data.limit), recorded in config.json and in every checkpoint; a
resume with another data order (eval_reference and data.limit included) stops before any step
naming the old and new values (or continues with data.allow_changed_on_resume), while a record
from before the split was recorded still resumes; workers that loaded different data stop
naming each one's values; a resume on another replica count continues the trajectory."""

import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import helpers
from wgan_dist import train
from wgan_dist.algorithm import steps
from wgan_dist.config import registry
from wgan_dist.data import identity
from wgan_dist.data import sources
from wgan_dist.tools import restore
from wgan_dist.training import checkpointing
from wgan_dist.training import run_identity

_RNG = np.random.default_rng(7)


# Fingerprints.

def test_array_fingerprint_follows_every_pixel_label_dtype_and_shape():
  images = _RNG.integers(0, 256, (6, 4, 4, 1), np.uint8)
  labels = np.arange(6, dtype=np.int32) % 2
  base = identity.array_fingerprint(images, labels)
  assert base == identity.array_fingerprint(images.copy(), labels.copy())
  changed = images.copy()
  changed[5, 3, 3, 0] ^= 1
  others = {identity.array_fingerprint(changed, labels),
            identity.array_fingerprint(images, labels[::-1].copy()),
            identity.array_fingerprint(images, None),
            identity.array_fingerprint(images.reshape(6, 16, 1, 1), labels),
            identity.array_fingerprint(images.astype(np.int16), labels)}
  assert base not in others and len(others) == 5
  # A strided view hashes as its contiguous copy (chunked, so no whole copy is made).
  strided = np.repeat(images, 2, axis=1)[:, ::2]
  assert identity.array_fingerprint(strided, labels) == base


def test_in_memory_source_identity_is_its_arrays(tiny_config):
  source = sources.load_source(tiny_config)  # The embedded MNIST sample.
  found = identity.of_source(source)
  assert found == identity.DatasetIdentity(identity.array_fingerprint(source.images), 5000)
  assert re.fullmatch(r'sha256:[0-9a-f]{64}', found.fingerprint)
  # A subset of arrays without a loader's fingerprint: its own arrays are hashed.
  assert identity.of_source(source.subset(np.arange(3))) == identity.DatasetIdentity(
      identity.array_fingerprint(source.images[:3]), 3)


def test_a_subset_of_a_fingerprinted_source_derives_its_fingerprint_from_the_indices(
    tiny_config, tmp_path):
  given = sources.Source('x', images=np.zeros((6, 2, 2, 1), np.uint8), fingerprint='given:1')
  first = given.subset(np.arange(3))
  assert re.fullmatch(r'subset-sha256:[0-9a-f]{64}', first.fingerprint)
  assert first.fingerprint == given.subset(np.arange(3)).fingerprint  # The same on every worker.
  others = {given.subset(np.array([0, 2, 1])).fingerprint, given.subset(np.arange(4)).fingerprint,
            dataclasses.replace(given, fingerprint='given:2').subset(np.arange(3)).fingerprint}
  assert first.fingerprint not in others | {'given:1'} and len(others) == 3
  # A file list (a folder) has no arrays to hash: its subset has an identity all the same.
  for index in range(3):
    _write_png(tmp_path / f'{index}.png', 40 * index)
  folder = _folder_source(tiny_config, tmp_path)
  part = identity.of_source(folder.subset(np.arange(2)))
  assert part == identity.DatasetIdentity(
      sources.subset_fingerprint(folder.fingerprint, np.arange(2)), 2)


def test_an_in_memory_loaders_own_fingerprint_is_the_identity(tiny_config, monkeypatch):
  images = np.zeros((4, 28, 28, 1), np.uint8)
  table = {**sources.SOURCES, 'given': sources.SourceKind(
      lambda config: sources.Loaded('given', images, fingerprint='given:abc'))}
  monkeypatch.setattr(sources, 'SOURCES', registry.Registry('data.source', table))
  tiny_config.data.source = 'given'
  assert identity.of_source(sources.load_source(tiny_config)) == identity.DatasetIdentity(
      'given:abc', 4)


def _write_png(path, value: int, size: int = 8) -> None:
  Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def _folder_source(config, path, **data):
  config.data.source, config.data.path = 'folder', str(path)
  for field, value in data.items():
    config.data[field] = value
  return sources.load_source(config)


def test_folder_fingerprint_is_of_contents_and_relative_paths_not_mtimes(tiny_config, tmp_path):
  first = tmp_path / 'first'
  first.mkdir()
  for index in range(3):
    _write_png(first / f'{index}.png', 40 * index)
  original = identity.of_source(_folder_source(tiny_config, first))
  assert original.count == 3 and original.fingerprint.startswith('sha256:')
  # A copy elsewhere with other modification times (another node's local copy): the same.
  copy = tmp_path / 'copy'
  shutil.copytree(first, copy, copy_function=shutil.copyfile)
  for name in os.listdir(copy):
    os.utime(copy / name, (1_000_000_000, 1_000_000_000))
  assert identity.of_source(_folder_source(tiny_config, copy)) == original
  # One file rewritten with other pixels at the same size: another fingerprint.
  size = os.path.getsize(copy / '2.png')
  _write_png(copy / '2.png', 81)
  assert os.path.getsize(copy / '2.png') == size
  assert identity.of_source(_folder_source(tiny_config, copy)).fingerprint != original.fingerprint
  # A file renamed: another fingerprint (the order and labels follow the names).
  os.rename(first / '2.png', first / '9.png')
  assert identity.of_source(_folder_source(tiny_config, first)).fingerprint != (
      original.fingerprint)


def test_a_skipped_file_changes_the_count_and_the_fingerprint(tiny_config, tmp_path):
  for index in range(3):
    _write_png(tmp_path / f'{index}.png', 40 * index)
  whole = identity.of_source(_folder_source(tiny_config, tmp_path))
  (tmp_path / '1.png').write_bytes((tmp_path / '1.png').read_bytes()[:20])  # Truncated.
  skipped = identity.of_source(_folder_source(tiny_config, tmp_path, on_bad_image='skip'))
  assert skipped.count == 2 and skipped.fingerprint != whole.fingerprint


# The record in a checkpoint.

def _identity(**changes) -> run_identity.RunIdentity:
  values = dict(dataset_fingerprint='sha256:' + 'ab' * 32, dataset_count=5000, seed=0,
                global_batch_size=64, n_critic=5)
  values.update(changes)
  return run_identity.RunIdentity(**values)


def _save(directory, recorder, number: int, max_to_keep: int = 2) -> str:
  checkpoint = tf.train.Checkpoint(**recorder.trackables())
  return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep).save(number)


def _restore_into(recorder, prefix: str) -> None:
  tf.train.Checkpoint(**recorder.trackables()).read(prefix).assert_existing_objects_matched()


def test_every_rotated_checkpoint_holds_the_record(tmp_path):
  recorder = run_identity.Recorder(_identity())
  for number in range(1, 5):
    newest = _save(tmp_path, recorder, number)
  assert len(checkpointing.candidates(str(tmp_path))) == 2  # Rotated.
  fresh = run_identity.Recorder(_identity(seed=3))
  _restore_into(fresh, newest)
  assert fresh.restored() == _identity()


@pytest.mark.parametrize('changes, named', [
    ({'seed': 1}, 'seed 0 -> 1'),
    ({'global_batch_size': 32}, 'train.global_batch_size 64 -> 32'),
    ({'n_critic': 1}, 'train.n_critic 5 -> 1'),
    ({'dataset_count': 4999, 'dataset_fingerprint': 'sha256:' + 'cd' * 32},
     f"dataset fingerprint 'sha256:{'ab' * 32}' -> 'sha256:{'cd' * 32}'; "
     'dataset count 5000 -> 4999'),
])
def test_a_resume_with_another_data_order_is_one_line_naming_old_and_new(tmp_path, changes,
                                                                         named):
  prefix = _save(tmp_path, run_identity.Recorder(_identity()), 1)
  resumed = run_identity.Recorder(_identity(**changes))
  _restore_into(resumed, prefix)
  with pytest.raises(run_identity.ResumeMismatchError) as error:
    resumed.check_resume(prefix, allow_changes=False)
  message = str(error.value)
  assert '\n' not in message
  assert message == (f'resuming from {prefix} with another data order: {named}; allowed: the '
                     'values the run was trained with (see config.json beside the checkpoints), '
                     'or --config.data.allow_changed_on_resume=True to continue deliberately '
                     'with the new order (and, with train.num_steps=-1, the new length)')


def test_the_override_continues_and_records_the_new_values(tmp_path, caplog):
  prefix = _save(tmp_path, run_identity.Recorder(_identity()), 1)
  resumed = run_identity.Recorder(_identity(seed=1))
  _restore_into(resumed, prefix)
  resumed.check_resume(prefix, allow_changes=True)
  assert 'seed 0 -> 1' in caplog.text
  _restore_into(reader := run_identity.Recorder(_identity()), _save(tmp_path, resumed, 2))
  assert reader.restored() == _identity(seed=1)


def test_fresh_start_and_the_same_values_pass(tmp_path):
  run_identity.Recorder(_identity(seed=9)).check_resume(None, allow_changes=False)
  prefix = _save(tmp_path, run_identity.Recorder(_identity()), 1)
  same = run_identity.Recorder(_identity())
  _restore_into(same, prefix)
  same.check_resume(prefix, allow_changes=False)


def test_a_record_from_before_the_training_split_resumes_against_the_whole_source(tmp_path):
  # Such a record fingerprinted the whole loaded source and has no training_split.
  whole = _identity()
  old = _save(tmp_path, run_identity.Recorder(whole), 1)
  trained = _identity(dataset_fingerprint='sha256:' + 'ef' * 32, dataset_count=4000,
                      training_split="eval_reference='heldout' holds out the reference")
  legacy_calls = []

  def legacy():
    legacy_calls.append(1)
    return whole

  resumed = run_identity.Recorder(trained, legacy)
  _restore_into(resumed, old)
  resumed.check_resume(old, allow_changes=False)  # The whole source is unchanged: resumes.
  assert legacy_calls == [1]
  # The next saves record the new form, which later resumes compare with what trains.
  _restore_into(reader := run_identity.Recorder(_identity()), _save(tmp_path, resumed, 2))
  assert reader.restored() == trained
  # An old record is still checked: another seed, or another whole source, stops.
  for changed in (_identity(seed=4), _identity(dataset_count=4999)):
    again = run_identity.Recorder(trained, lambda changed=changed: changed)
    _restore_into(again, old)
    with pytest.raises(run_identity.ResumeMismatchError):
      again.check_resume(old, allow_changes=False)


def _recorder(config) -> run_identity.Recorder:
  """The run's Recorder as train_and_evaluate starts it (one process: no exchange)."""
  loaded = sources.load_source(config)
  trained, _ = train.training_data(config, loaded)
  return run_identity.start(config, loaded, trained, tasks=[], me=('worker', 0))


def test_data_limit_is_in_the_identity(tiny_config, tmp_path):
  tiny_config.eval_reference = 'train_full'  # Nothing held out: the limit alone chooses.
  whole = _recorder(tiny_config)
  assert whole.current.dataset_count == 5000
  assert whole.current.training_split == 'all loaded images'
  prefix = _save(tmp_path, whole, 1)
  tiny_config.data.limit = 1000
  limited = _recorder(tiny_config)
  assert limited.current.dataset_count == 1000
  assert limited.current.dataset_fingerprint == identity.array_fingerprint(
      train.training_data(tiny_config)[0].images)
  _restore_into(limited, prefix)
  with pytest.raises(run_identity.ResumeMismatchError, match=re.escape(
      "dataset count 5000 -> 1000; training split 'all loaded images' -> 'data.limit=1000'; "
      'allowed:')):
    limited.check_resume(prefix, allow_changes=False)


def test_eval_reference_is_not_in_the_identity_of_a_source_it_does_not_split(tiny_config,
                                                                             tmp_path):
  np.savez(tmp_path / 'images.npz', x=np.zeros((6, 28, 28, 1), np.uint8))
  tiny_config.data.source, tiny_config.data.path = 'npz', str(tmp_path / 'images.npz')
  held_out = _recorder(tiny_config).current
  tiny_config.eval_reference = 'train_full'
  assert _recorder(tiny_config).current == held_out
  assert held_out.training_split == 'all loaded images' and held_out.dataset_count == 6


def test_a_record_without_the_field_reads_as_none():
  text = json.dumps({'dataset_fingerprint': 'sha256:' + 'ab' * 32, 'dataset_count': 5000,
                     'seed': 0, 'global_batch_size': 64, 'n_critic': 5})
  assert run_identity.RunIdentity.from_json(text) == _identity()


# Workers: the coordination service's key-value store, faked.

_FakeStore = helpers.FakeKeyValueStore


_TASKS = [('worker', 0, 'host0:1'), ('worker', 1, 'host1:1')]


def _exchange(mine, worker1, store=None) -> None:
  store = store or _FakeStore({('worker', '1'): worker1.__dict__})
  run_identity.check_workers_agree(mine, _TASKS, ('worker', 0), timeout_secs=1, store=store)


def test_workers_with_the_same_data_agree_also_in_a_second_run_of_the_process():
  store = _FakeStore({('worker', '1'): _identity().__dict__})
  _exchange(_identity(), _identity(), store)
  _exchange(_identity(), _identity(), store)  # New keys: no AlreadyExists.
  assert len(store.values) == 2


def test_workers_with_different_counts_stop_naming_each_ones_values():
  with pytest.raises(sources.DataError) as error:
    _exchange(_identity(), _identity(dataset_count=4999,
                                     dataset_fingerprint='sha256:' + 'cd' * 32))
  assert str(error.value) == (
      'the workers would train on different data orders: '
      f"worker 0 (host0:1): dataset fingerprint 'sha256:{'ab' * 32}', dataset count 5000; "
      f"worker 1 (host1:1): dataset fingerprint 'sha256:{'cd' * 32}', dataset count 4999; "
      'allowed: the same data and config on every worker (with '
      "data.on_bad_image='skip', a file one worker could not read is left out there only)")


def test_workers_with_different_seeds_stop_naming_the_seeds():
  with pytest.raises(sources.DataError, match=re.escape(
      'worker 0 (host0:1): seed 0; worker 1 (host1:1): seed 2; allowed: the same data and '
      'config on every worker')):
    _exchange(_identity(), _identity(seed=2))


# Through train_and_evaluate: config.json, the checkpoints, a refused and an allowed resume.

def _scalars(workdir) -> dict[int, float]:
  return helpers.event_scalars(str(workdir), 'train/critic_loss')


@pytest.mark.slow
def test_a_run_records_its_identity_and_refuses_a_changed_resume(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, str(workdir))
  with open(workdir / 'config.json') as f:
    recorded = json.load(f)['run_identity']
  # What the generator trains on: the embedded sample without its 1,000 held-out digits.
  trained, _ = train.training_data(tiny_config)
  assert trained.size == 4000
  assert recorded == {'dataset_fingerprint': identity.array_fingerprint(trained.images),
                      'dataset_count': 4000, 'seed': 0, 'global_batch_size': 8, 'n_critic': 2,
                      'training_split': "eval_reference='heldout' holds out the reference"}
  # The tools still read config.json as a config.
  assert restore.load_config(str(workdir)).train.num_steps == 2
  checkpoints = sorted(os.listdir(workdir / 'checkpoints'))
  events = _scalars(workdir)

  # Another training set: all 5,000 digits (data.limit: test_data_limit_is_in_the_identity).
  tiny_config.train.num_steps = 4
  tiny_config.eval_reference = 'train_full'
  with pytest.raises(run_identity.ResumeMismatchError, match=re.escape(
      "dataset count 4000 -> 5000; training split \"eval_reference='heldout' holds out the "
      "reference\" -> 'all loaded images'; allowed:")) as error:
    train.train_and_evaluate(tiny_config, str(workdir))
  assert '\n' not in str(error.value)
  tiny_config.eval_reference = 'heldout'

  tiny_config.train.n_critic = 3
  with pytest.raises(run_identity.ResumeMismatchError, match=re.escape(
      'ckpt-2 with another data order: train.n_critic 2 -> 3; allowed:')):
    train.train_and_evaluate(tiny_config, str(workdir))
  # Stopped before any step: no new checkpoint, no new events.
  assert sorted(os.listdir(workdir / 'checkpoints')) == checkpoints
  assert _scalars(workdir) == events

  tiny_config.data.allow_changed_on_resume = True
  train.train_and_evaluate(tiny_config, str(workdir))
  assert max(_scalars(workdir)) == 4
  with open(workdir / 'config.json') as f:
    assert json.load(f)['run_identity']['n_critic'] == 3
  # The newest checkpoint records the new order: the same config resumes without the override.
  tiny_config.data.allow_changed_on_resume = False
  tiny_config.train.num_steps = 5
  train.train_and_evaluate(tiny_config, str(workdir))
  assert max(_scalars(workdir)) == 5


# A resume on another replica count: the same order, the same trajectory up to rounding.

@pytest.mark.slow
def test_a_resume_on_two_replicas_continues_a_one_replica_run(tiny_config, tmp_path):
  """2 steps on 1 replica, then 2 more on 2 replicas == 4 steps on 1 replica, to the bounds of
  tests/test_replica_invariance.py (gradients summed in another order; with its Adam epsilon,
  which that file explains)."""
  from tests import test_replica_invariance as reference  # pylint: disable=import-outside-toplevel
  tiny_config.log_every_steps = 1
  tiny_config.train.adam_epsilon = helpers.COMPARISON_ADAM_EPSILON

  def run(workdir, num_steps: int, replicas: int) -> None:
    config = tiny_config.copy_and_resolve_references()
    config.train.num_steps = num_steps
    config.distribution.strategy = 'mirrored' if replicas > 1 else 'one_device'
    config.distribution.cpu_replicas = replicas if replicas > 1 else 0
    train.train_and_evaluate(config, str(workdir))

  straight, moved = tmp_path / 'straight', tmp_path / 'moved'
  run(straight, 4, 1)
  run(moved, 2, 1)
  run(moved, 4, 2)
  largest = 0.0
  for name in steps.METRICS:
    a = helpers.event_scalars(str(straight), f'train/{name}')
    b = helpers.event_scalars(str(moved), f'train/{name}')
    assert sorted(a) == sorted(b) == [1, 2, 3, 4], name
    for step in a:
      if step <= 2:
        assert a[step] == b[step], (name, step)  # The same process layout: bit-identical.
      else:
        np.testing.assert_allclose(b[step], a[step], rtol=reference.LOSS_RTOL,
                                   atol=reference.LOSS_ATOL,
                                   err_msg=f'{name} at step {step}')
        largest = max(largest, abs(b[step] - a[step]) / max(abs(a[step]), 1e-3))
  print(f'largest relative difference after the move to 2 replicas: {largest:.2g}')
