"""Launch scripts without GPUs or SLURM here: local_cluster.sh splits the visible GPUs between its
workers (LOCAL_CLUSTER_DRY_RUN prints the split); slurm.sbatch starts one task per node with the
job's CPUs (its srun and scontrol replaced by stand-ins that print what they were given)."""

import os
import stat
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def _local_cluster(num_workers: int, env_update: dict, unset_cuda: bool = False):
  env = dict(os.environ, LOCAL_CLUSTER_DRY_RUN='1', **env_update)
  if unset_cuda:
    env.pop('CUDA_VISIBLE_DEVICES', None)
  return subprocess.run(['launch/local_cluster.sh', str(num_workers)], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=60, check=False)


def _assignments(stderr: str) -> list[str]:
  return [line.split('CUDA_VISIBLE_DEVICES=')[1] for line in stderr.splitlines()
          if ': CUDA_VISIBLE_DEVICES=' in line]


@pytest.mark.parametrize('visible, workers, expected', [
    ('0,1,2,3,4,5,6,7', 2, ['0,1,2,3', '4,5,6,7']),
    ('0,1,2,3', 4, ['0', '1', '2', '3']),
    ('4,5', 1, ['4,5']),
    ('', 3, ['', '', '']),  # No GPU: every worker on the CPU.
])
def test_local_cluster_gives_each_worker_its_own_gpus(visible, workers, expected):
  result = _local_cluster(workers, {'CUDA_VISIBLE_DEVICES': visible})
  assert result.returncode == 0, result.stderr
  assert _assignments(result.stderr) == expected
  assert 'warning' not in result.stderr


def test_local_cluster_warns_about_gpus_left_over():
  result = _local_cluster(2, {'CUDA_VISIBLE_DEVICES': '0,1,2'})
  assert result.returncode == 0, result.stderr
  assert _assignments(result.stderr) == ['0', '1']
  assert 'GPU(s) 2 stay unused' in result.stderr


def test_local_cluster_refuses_more_workers_than_gpus():
  result = _local_cluster(3, {'CUDA_VISIBLE_DEVICES': '0,1'})
  assert result.returncode == 2
  assert result.stderr.strip() == ('local_cluster: 3 workers but 2 GPU(s) (0,1): start at most 2 '
                                   "workers, or set CUDA_VISIBLE_DEVICES= to run them all on the "
                                   'CPU')


def _stand_in(directory, name: str, script: str) -> None:
  path = directory / name
  path.write_text('#!/usr/bin/env bash\n' + script)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_local_cluster_reads_nvidia_smi_when_cuda_visible_devices_is_unset(tmp_path):
  _stand_in(tmp_path, 'nvidia-smi', 'printf "0\\n1\\n2\\n3\\n"\n')
  result = _local_cluster(2, {'PATH': f'{tmp_path}:{os.environ["PATH"]}'}, unset_cuda=True)
  assert result.returncode == 0, result.stderr
  assert _assignments(result.stderr) == ['0,1', '2,3']


def test_slurm_starts_one_task_per_node_with_the_jobs_cpus(tmp_path):
  _stand_in(tmp_path, 'scontrol', 'printf "gpu-a1\\ngpu-a2\\n"\n')
  _stand_in(tmp_path, 'srun', 'echo "srun $*"; echo "SRUN_CPUS_PER_TASK=$SRUN_CPUS_PER_TASK"; '
            'echo "WORKER_HOSTS=$WORKER_HOSTS"\n')
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SLURM_JOB_ID='20007',
             SLURM_JOB_NODELIST='gpu-a[1-2]', SLURM_CPUS_PER_TASK='16',
             SLURM_SUBMIT_DIR=REPO_ROOT)
  result = subprocess.run(['bash', 'launch/slurm.sbatch', '--config=configs/mnist.py'],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].startswith('srun --ntasks-per-node=1 --cpus-per-task=16 bash -c '), lines[0]
  assert lines[0].endswith(' multi_worker --config=configs/mnist.py'), lines[0]
  assert lines[1:] == ['SRUN_CPUS_PER_TASK=16', 'WORKER_HOSTS=gpu-a1:20007,gpu-a2:20007']


def test_slurm_without_cpus_per_task_passes_none(tmp_path):
  """No #SBATCH --cpus-per-task line: SLURM's default, not one CPU per task."""
  _stand_in(tmp_path, 'scontrol', 'printf "gpu-a1\\n"\n')
  _stand_in(tmp_path, 'srun',
            'echo "srun $*"; echo "SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK-unset}"\n')
  env = {name: value for name, value in os.environ.items()
         if name not in ('SLURM_CPUS_PER_TASK', 'SRUN_CPUS_PER_TASK')}
  env.update(PATH=f'{tmp_path}:{os.environ["PATH"]}', SLURM_JOB_ID='20007',
             SLURM_JOB_NODELIST='gpu-a1', SLURM_SUBMIT_DIR=REPO_ROOT)
  result = subprocess.run(['bash', 'launch/slurm.sbatch', '--config=configs/mnist.py'],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].startswith('srun --ntasks-per-node=1 bash -c '), lines[0]
  assert lines[1] == 'SRUN_CPUS_PER_TASK=unset'
