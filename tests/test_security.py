"""Who can reach a running job: local_cluster.sh's workers, in the network namespace of their own
it gives them, cannot be connected to from outside it, while they train and until they finish.

TensorFlow's server in each worker binds every interface of its namespace; on the machine's own
network (main's script, or LOCAL_CLUSTER_NETWORK=host) the same connection succeeds.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests import test_launch
from tests.conftest import REPO_ROOT

TINY = 'configs/mnist.py:tiny'
OFFLINE = '--config.data.allow_download=False'


def _children(pid: int) -> list[int]:
  """The worker processes (wgan_dist.main) whose parent is `pid`."""
  found = []
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat') as f:
        parent = int(f.read().rsplit(')', 1)[1].split()[1])
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        command = f.read().replace(b'\0', b' ')
    except (OSError, IndexError, ValueError):
      continue  # Gone meanwhile.
    if parent == pid and b'wgan_dist.main' in command:
      found.append(int(entry))
  return sorted(found)


def _listening_ports(net_dir: str) -> set[int]:
  """Ports in LISTEN state in <net_dir>/tcp and tcp6: /proc/net (this process's namespace) or
  /proc/<pid>/net (that process's)."""
  ports = set()
  for name in ('tcp', 'tcp6'):
    with open(os.path.join(net_dir, name)) as f:
      for line in f.readlines()[1:]:
        fields = line.split()
        if fields[3] == '0A':
          ports.add(int(fields[1].rsplit(':', 1)[1], 16))
  return ports


def _refused(port: int) -> bool:
  try:
    with socket.create_connection(('127.0.0.1', port), timeout=5):
      return False
  except ConnectionRefusedError:
    return True


@pytest.mark.slow
def test_workers_in_their_namespace_refuse_connections_from_outside_it(tmp_path):
  # The scripts run `python`: this interpreter, with its packages.
  env = dict(os.environ, TMPDIR=str(tmp_path), LOCAL_CLUSTER_LOG_DIR=str(tmp_path / 'logs'),
             TF_CPP_MIN_LOG_LEVEL='2',
             PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ['PATH']]))
  env.pop('LOCAL_CLUSTER_NETWORK', None)
  why = test_launch.namespace_refusal()
  if why:
    pytest.skip(f'this system permits no network namespace here: {why}')

  chief_log = tmp_path / 'chief.log'
  with open(chief_log, 'w') as log:
    job = subprocess.Popen(
        ['launch/local_cluster.sh', '2', f'--config={TINY}', OFFLINE,
         f'--workdir={tmp_path / "workdir"}', '--config.train.num_steps=20',
         '--config.train.steps_per_loop=1', '--config.log_every_steps=1'],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 900  # Generous: a loaded machine starts TensorFlow slowly.
    ports, workers, refused_while_training, unreadable = [], [], 0, []
    while job.poll() is None:
      assert time.monotonic() < deadline, chief_log.read_text()[-3000:]
      if not ports and ' workers on ' in chief_log.read_text():
        line = next(line for line in chief_log.read_text().splitlines() if ' workers on ' in line)
        ports = [int(host.rsplit(':', 1)[1]) for host in line.split()[4].rstrip(';').split(',')]
      if ports and len(workers) < 2:
        workers = _children(job.pid)
      if len(workers) == 2:
        try:
          inside = _listening_ports(f'/proc/{workers[0]}/net')
          namespace = os.readlink(f'/proc/{workers[0]}/ns/net')
        except OSError as error:  # The worker has ended: the job will follow.
          unreadable.append(f'{workers[0]}: {error}')
          time.sleep(0.2)
          continue
        if set(ports) <= inside:  # Both servers are up in the workers' namespace...
          assert namespace != os.readlink('/proc/self/ns/net')
          assert not set(ports) & _listening_ports('/proc/net')  # ...and not in this one,
          for port in ports:  # where connecting to them is refused.
            assert _refused(port), f'127.0.0.1:{port} accepted a connection from outside'
          logged = (tmp_path / 'logs' / 'worker1.log').read_text()
          refused_while_training += 'step 1/' in logged and 'step 20/' not in logged
      time.sleep(0.2)
  finally:
    if job.poll() is None:
      for pid in workers:
        try:
          os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
          pass
      job.kill()
  log = chief_log.read_text()
  assert job.wait() == 0, log[-3000:]
  assert "local_cluster: network: the workers' own namespace (unshare " in log
  assert refused_while_training > 0, ('no check fell between the first step and the last',
                                      ports, workers, unreadable[:3])
  assert ports and all(_refused(port) for port in ports)
  assert 'step 20/20' in log
