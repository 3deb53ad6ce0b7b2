"""launch/kubernetes/tfjob.yaml: its command line parses against configs/default.py with the flags
wgan_dist.main defines, points at the mounted volumes, and the TF_CONFIG the training operator
gives each worker makes one multi-worker job with worker 0 as the chief."""

import json
import os

import pytest
import yaml
from absl import flags
from ml_collections import config_flags

from tests.conftest import REPO_ROOT
from wgan_dist.config import validation as config_validation
from wgan_dist.data import sources
from wgan_dist.dist import distribution

_PATH = os.path.join(REPO_ROOT, 'launch', 'kubernetes', 'tfjob.yaml')


@pytest.fixture(scope='module')
def job() -> dict:
  with open(_PATH) as f:
    return yaml.safe_load(f)


def _worker(job: dict) -> dict:
  return job['spec']['tfReplicaSpecs']['Worker']


def _container(job: dict) -> dict:
  containers = _worker(job)['template']['spec']['containers']
  assert [container['name'] for container in containers] == ['tensorflow']
  return containers[0]


def _parse(args: list[str]):
  """(config, workdir) as wgan_dist.main parses `args`: the same two flags, a locked config."""
  argv = ['wgan_dist.main', *args]
  flag_values = flags.FlagValues()
  # sys_argv: the overrides to define (main's come from sys.argv).
  config_flags.DEFINE_config_file('config', None, '', flag_values=flag_values,
                                  lock_config=True, sys_argv=argv)
  flags.DEFINE_string('workdir', None, '', flag_values=flag_values)
  flag_values(argv)  # An unknown flag or config field, or a wrongly typed value, raises here.
  return flag_values.config, flag_values.workdir


def _mounts(job: dict) -> dict[str, dict]:
  return {mount['mountPath']: mount for mount in _container(job)['volumeMounts']}


def test_it_is_a_tfjob_running_the_training_command(job):
  assert job['apiVersion'] == 'kubeflow.org/v1' and job['kind'] == 'TFJob'
  assert list(job['spec']['tfReplicaSpecs']) == ['Worker']  # Worker 0 is the chief.
  container = _container(job)
  assert container['command'] == ['python', '-m', 'wgan_dist.main']
  assert container['image'] and container['workingDir'] == '/app'


def test_the_command_line_parses_and_reads_the_volumes(job, monkeypatch):
  monkeypatch.chdir(REPO_ROOT)  # The image's working directory holds configs/.
  config, workdir = _parse(_container(job)['args'])
  mounts = _mounts(job)
  assert config.data.source == 'prepared' and config.distribution.strategy == 'multi_worker'
  # The data from the read-only volume, the workdir on the shared writable one.
  assert mounts['/data']['readOnly'] is True
  assert config.data.path.startswith('/data/') and workdir.startswith('/runs/')
  assert not mounts['/runs'].get('readOnly', False)
  volumes = {volume['name']: volume for volume in _worker(job)['template']['spec']['volumes']}
  assert set(volumes) == {mount['name'] for mount in mounts.values()}
  # Every other field validates; data.source='prepared' is checked by the prepared source's own
  # tests (until it is among sources.SOURCES, validate the rest with another source's name).
  if config.data.source not in sources.SOURCES:
    config.data.source = 'folder'
  config_validation.validate(config)


def _tf_config(job: dict, index: int) -> str:
  """The TF_CONFIG the training operator sets in worker `index`'s pod."""
  name, replicas = job['metadata']['name'], _worker(job)['replicas']
  port = {p['name']: p['containerPort'] for p in _container(job)['ports']}['tfjob-port']
  hosts = [f'{name}-worker-{i}.default.svc:{port}' for i in range(replicas)]
  return json.dumps({'cluster': {'worker': hosts}, 'task': {'type': 'worker', 'index': index},
                     'environment': 'cloud'})


def test_each_worker_joins_one_job_with_worker_0_as_chief(job, monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  config, _ = _parse(_container(job)['args'])
  replicas = _worker(job)['replicas']
  gpus = int(_container(job)['resources']['limits']['nvidia.com/gpu'])
  assert replicas >= 2 and gpus >= 1
  for index in range(replicas):
    monkeypatch.setenv('TF_CONFIG', _tf_config(job, index))
    tasks = distribution.cluster_tasks()
    assert [task[:2] for task in tasks] == [('worker', i) for i in range(replicas)]
    assert distribution.this_task() == ('worker', index)
    assert distribution.is_chief() == (index == 0)
    assert distribution.strategy_kind(config, gpus) == 'multi_worker'
  # The global batch splits over every replica of the job.
  config_validation.validate_replicas(config, replicas * gpus)
