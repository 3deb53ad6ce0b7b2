"""Launch scripts without GPUs or SLURM here: local_cluster.sh splits the visible GPUs between its
workers (LOCAL_CLUSTER_DRY_RUN prints the split) and runs them in a network namespace of their own
where the system permits it (a stand-in for the trainer reports where each worker ran);
slurm.sbatch starts one task per node with the job's CPUs (its srun and scontrol replaced by
stand-ins that print what they were given); the launchers say which port each worker listens
on."""

import os
import signal
import stat
import subprocess
import sys
import time

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


def _gpu_warnings(stderr: str) -> list[str]:
  """Warnings other than the one about the workers' network (which depends on the system)."""
  return [line for line in stderr.splitlines()
          if 'warning' in line and line not in _network_lines(stderr)]


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
  assert _gpu_warnings(result.stderr) == []


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
  # Once, before the workers start: the port and that it takes anyone's connection.
  assert result.stderr.splitlines() == [
      'slurm: every worker listens on port 20007 on all interfaces of its node for the whole job '
      "(gpu-a1:20007,gpu-a2:20007): TensorFlow's server, unauthenticated: whoever reaches it can "
      'run code as you; keep the port on a private cluster network or firewalled (WGAN_DIST_PORT '
      'sets it; docs/security.md)']


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


# The workers' network (local_cluster.sh) and the ports the launchers announce. A stand-in for
# `python -m wgan_dist.main` reports where each worker ran; every other `python` (TF_CONFIG, the
# free ports, bringing up the namespace's loopback) is the real interpreter.
_WORKER_STAND_IN = f'''if [[ "$1 $2" != "-m wgan_dist.main" ]]; then exec {sys.executable} "$@"; fi
echo "worker $TASK_INDEX netns=$(readlink /proc/self/ns/net) uid=$(id -u) pid=$$ ppid=$PPID \\
pgid=$(cut -d ' ' -f 5 /proc/$$/stat) hosts=${{WORKER_HOSTS:-}} args=$*"
exit "${{WORKER_EXIT:-0}}"
'''


def _run_workers(tmp_path, env_update: dict, stand_ins: dict = None):
  """launch/local_cluster.sh 2 with the worker stand-in; returns (result, {index: report})."""
  for name, script in {'python': _WORKER_STAND_IN, **(stand_ins or {})}.items():
    _stand_in(tmp_path, name, script)
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}',
             LOCAL_CLUSTER_LOG_DIR=str(tmp_path / 'logs'), CUDA_VISIBLE_DEVICES='', **env_update)
  env.pop('_LOCAL_CLUSTER_NAMESPACE', None)
  process = subprocess.Popen(['launch/local_cluster.sh', '2', '--config=configs/mnist.py:tiny'],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  stdout, stderr = process.communicate(timeout=60)
  result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
  result.pid = process.pid
  reports = stdout.splitlines() + (tmp_path / 'logs' / 'worker1.log').read_text().splitlines()
  workers = {}
  for line in reports:
    if line.startswith('worker '):
      fields = dict(field.split('=', 1) for field in line.split(' args=')[0].split()[2:])
      workers[int(line.split()[1])] = fields
  return result, workers


def _network_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith('local_cluster: network: ')
          or 'private network namespace' in line or 'LOCAL_CLUSTER_NETWORK' in line]


def namespace_refusal() -> str:
  """Why this system lets this user make no network namespace ('' when it does): the test of
  the private mode is skipped then, decided without the script under test."""
  attempts = [['unshare', '--net'], ['unshare', '--user', '--map-root-user', '--net']]
  why = ''
  for attempt in attempts[0 if os.geteuid() == 0 else 1:]:
    try:
      result = subprocess.run([*attempt, 'true'], capture_output=True, text=True, timeout=30,
                              check=False)
    except FileNotFoundError:
      return 'unshare is not installed'
    if result.returncode == 0:
      return ''
    why = result.stderr.strip()
  return why


def _private_network_or_skip():
  why = namespace_refusal()
  if why:
    pytest.skip(f'this system permits no network namespace here: {why}')


def test_local_cluster_runs_its_workers_in_a_private_network_namespace(tmp_path):
  """Both workers in one namespace that is not this one, as this user, children of the script's
  own process (its pid), each in a process group of its own (signals reach them through the
  script, which passes them on: see the tests of signals below)."""
  _private_network_or_skip()
  result, workers = _run_workers(tmp_path, {})
  assert result.returncode == 0, result.stderr
  network = _network_lines(result.stderr)
  assert len(network) == 1 and network[0].startswith(
      "local_cluster: network: the workers' own namespace (unshare "), network
  assert 'warning' not in result.stderr
  host_namespace = os.readlink('/proc/self/ns/net')
  assert sorted(workers) == [0, 1]
  assert workers[0]['netns'] == workers[1]['netns'] != host_namespace
  for report in workers.values():
    assert report['uid'] == str(os.getuid())
    assert report['ppid'] == str(result.pid)
    assert report['pgid'] == report['pid']
  assert workers[0]['hosts'] == workers[1]['hosts']
  assert [host.split(':')[0] for host in workers[0]['hosts'].split(',')] == ['127.0.0.1'] * 2


def test_local_cluster_on_the_host_network_warns_once_and_runs_its_workers_here(tmp_path):
  result, workers = _run_workers(tmp_path, {'LOCAL_CLUSTER_NETWORK': 'host', 'WORKER_EXIT': '3'})
  assert _network_lines(result.stderr) == [
      "local_cluster: warning: LOCAL_CLUSTER_NETWORK=host: the workers' ports listen on all "
      'interfaces, unauthenticated, for the whole job (docs/security.md)']
  host_namespace = os.readlink('/proc/self/ns/net')
  assert [workers[i]['netns'] for i in (0, 1)] == [host_namespace, host_namespace]
  assert workers[1]['ppid'] == str(result.pid)
  # Any failed worker fails the script, with the workers' own status; each one is named.
  assert result.returncode == 3
  assert ('local_cluster: worker 0 (the chief) failed (exit status 3); its output is above'
          in result.stderr)
  assert (f'local_cluster: worker 1 failed (exit status 3); see {tmp_path}/logs/worker1.log'
          in result.stderr)


def test_local_cluster_falls_back_with_one_warning_where_namespaces_are_refused(tmp_path):
  _stand_in(tmp_path, 'unshare', 'echo "unshare: unshare failed: Operation not permitted" >&2\n'
            'exit 1\n')
  result = _local_cluster(2, {'CUDA_VISIBLE_DEVICES': '',
                              'PATH': f'{tmp_path}:{os.environ["PATH"]}'})
  assert result.returncode == 0, result.stderr
  assert _network_lines(result.stderr) == [
      'local_cluster: warning: no private network namespace for the workers (unshare: unshare '
      'failed: Operation not permitted): their ports listen on all interfaces, unauthenticated, '
      'for the whole job (docs/security.md)']


def test_local_cluster_refuses_an_unknown_network():
  result = _local_cluster(2, {'LOCAL_CLUSTER_NETWORK': 'loopback'})
  assert result.returncode == 2
  assert result.stderr.strip() == (
      "local_cluster: LOCAL_CLUSTER_NETWORK=loopback: allowed: private (the default: the "
      "workers' own network namespace where the system permits it) or host")


def test_multi_worker_says_once_which_port_it_listens_on(tmp_path):
  _stand_in(tmp_path, 'python', _WORKER_STAND_IN)
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}',
             WORKER_HOSTS='node1:12345,node2:23456', TASK_INDEX='1')
  result = subprocess.run(['launch/multi_worker.sh', '--config=configs/mnist.py'], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stderr.splitlines() == [
      'multi_worker: worker 1 of 2 listens on port 23456 on all interfaces for the whole job '
      "(workers: node1:12345,node2:23456): TensorFlow's server, unauthenticated: whoever reaches "
      'it can run code as this user; keep these ports on a trusted network (docs/security.md)']
  assert result.stdout.startswith('worker 1 ')


# Signals: a stand-in worker that records each SIGTERM or SIGINT it receives, keeps running a
# little (a second delivery would be recorded too), then exits as a stopped worker does (128 + the
# signal). `ready` files say that its traps are set; `pid` files name it.
_SIGNALLED_WORKER = f'''if [[ "$1 $2" != "-m wgan_dist.main" ]]; then exec {sys.executable} "$@"; fi
out=$SIGNAL_DIR/worker$TASK_INDEX
stop() {{ echo "$1" >>"$out.signals"; code=$2; }}
code=
trap 'stop TERM 143' TERM
trap 'stop INT 130' INT
echo $$ >"$out.pid"
touch "$out.ready"
while [[ -z "$code" ]]; do sleep 0.05; done
for _ in 1 2 3 4 5 6 7 8 9 10; do sleep 0.05; done
exit "$code"
'''


def _gone(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  return False


def _signalled_cluster(tmp_path, signum: int, to_group: bool) -> tuple[int, dict, str]:
  """Starts launch/local_cluster.sh 2 with the signalled stand-in, sends `signum` to the script
  (or to its whole process group, as a terminal's Ctrl-C does) once both workers are ready;
  returns (the script's exit status, {worker index: (signals received, pid)}, its stderr)."""
  _stand_in(tmp_path, 'python', _SIGNALLED_WORKER)
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SIGNAL_DIR=str(tmp_path),
             LOCAL_CLUSTER_LOG_DIR=str(tmp_path / 'logs'), CUDA_VISIBLE_DEVICES='')
  env.pop('_LOCAL_CLUSTER_NAMESPACE', None)
  process = subprocess.Popen(['launch/local_cluster.sh', '2', '--config=configs/mnist.py:tiny'],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             # As from a terminal: a shell that starts with SIGINT ignored (the
                             # test run in the background of a script) cannot trap it.
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    while not all((tmp_path / f'worker{i}.ready').exists() for i in (0, 1)):
      assert process.poll() is None, process.stderr.read()
      time.sleep(0.05)
    if to_group:
      os.killpg(process.pid, signum)
    else:
      process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
  finally:  # Nothing left running, whatever failed.
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
    pids = [int((tmp_path / f'worker{i}.pid').read_text()) for i in (0, 1)
            if (tmp_path / f'worker{i}.pid').exists()]
    for pid in pids:
      if not _gone(pid):
        os.kill(pid, signal.SIGKILL)
  received = {i: (tmp_path / f'worker{i}.signals') for i in (0, 1)}
  workers = {i: (path.read_text().split() if path.exists() else [], pids[i])
             for i, path in received.items()}
  return process.returncode, workers, stderr


@pytest.mark.parametrize('signum, name, status', [(signal.SIGTERM, 'TERM', 143),
                                                  (signal.SIGINT, 'INT', 130)])
def test_local_cluster_passes_a_signal_on_to_every_worker_and_exits_with_their_status(
    tmp_path, signum, name, status):
  """`kill <pid of the script>`: each worker gets the signal once; the script waits for them."""
  code, workers, stderr = _signalled_cluster(tmp_path, signum, to_group=False)
  assert code == status, stderr
  for signals_received, pid in workers.values():
    assert signals_received == [name]
    assert _gone(pid)
  assert f'worker 0 (the chief) failed (exit status {status})' in stderr


def test_a_ctrl_c_reaches_each_worker_once(tmp_path):
  """A terminal's Ctrl-C goes to the script's whole process group: the workers, in groups of
  their own, get it once, from the script (a second SIGINT would stop them without saving)."""
  code, workers, stderr = _signalled_cluster(tmp_path, signal.SIGINT, to_group=True)
  assert code == 130, stderr
  assert [received for received, _ in workers.values()] == [['INT'], ['INT']]
