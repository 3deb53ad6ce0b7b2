"""How promptly a multi-worker job ends at preemption (BENCHMARKS.md, "Preemption").

  python benchmarks/preemption_bench.py --workers=2 [--repeats=3] [--keep=DIR]

Starts a job of `--workers` processes of `python -m wgan_dist.main` on 127.0.0.1 (the tiny
config, one CPU replica each, offline), waits until every worker has logged a training step,
then sends SIGTERM to every worker at once, as SLURM does at preemption or `scancel`. It polls
the chief's checkpoint directory and the processes every 20 ms and prints one JSON line per
repeat: the seconds from the signal to the checkpoint's index file appearing, from that file
to each worker's exit, and each worker's exit status (143: stopped by SIGTERM after saving).
The 1-minute load average is printed too: the machine is shared, and a figure taken under a
high load is marked by it.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from wgan_dist.dist import distribution

_WORKERS = flags.DEFINE_integer('workers', 2, 'Worker processes of the job.')
_REPEATS = flags.DEFINE_integer('repeats', 1, 'Jobs to start and stop, one after the other.')
_KEEP = flags.DEFINE_string('keep', None, 'Directory for the workdirs and logs (kept); default '
                            'a temporary directory, deleted.')
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_POLL_SECS = 0.02


def _start(directory: str, num_workers: int) -> tuple[list[subprocess.Popen], list[str], str]:
  """The job's workers, their log files and the workdir."""
  hosts = distribution.loopback_hosts(num_workers)
  workdir = os.path.join(directory, 'workdir')
  workers, logs = [], []
  for index in range(num_workers):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': {'worker': hosts}, 'task': {'type': 'worker', 'index': index}}))
    logs.append(os.path.join(directory, f'worker{index}.log'))
    with open(logs[-1], 'w') as log:
      workers.append(subprocess.Popen(
          [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
           '--config.data.allow_download=False', '--config.distribution.strategy=multi_worker',
           f'--workdir={workdir}', '--config.train.num_steps=1000000',
           '--config.train.steps_per_loop=1', '--config.log_every_steps=1',
           '--config.checkpoint_every_steps=1000000', '--config.sample_every_steps=1000000'],
          cwd=_REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
  return workers, logs, workdir


def _checkpoint_written(workdir: str) -> bool:
  directory = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(directory) and any(name.endswith('.index')
                                          for name in os.listdir(directory))


def _measure(directory: str, num_workers: int) -> dict:
  workers, logs, workdir = _start(directory, num_workers)
  try:
    deadline = time.monotonic() + 900
    while not all('step 2/' in open(log).read() for log in logs):
      if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
        raise RuntimeError(f'training did not start; see {logs}')
      time.sleep(0.2)
    signalled = time.monotonic()
    for worker in workers:
      worker.send_signal(signal.SIGTERM)
    saved, exited = None, [None] * num_workers
    while None in exited and time.monotonic() < signalled + 300:
      now = time.monotonic()
      if saved is None and _checkpoint_written(workdir):
        saved = now
      for index, worker in enumerate(workers):
        if exited[index] is None and worker.poll() is not None:
          exited[index] = now
      time.sleep(_POLL_SECS)
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
        worker.wait()
  return {
      'signal_to_checkpoint_s': round(saved - signalled, 2) if saved else None,
      'checkpoint_to_exit_s': [round(t - saved, 2) if t and saved else None for t in exited],
      'exit_codes': [worker.returncode for worker in workers],
      'load_average': round(os.getloadavg()[0], 1)}


def main(argv: list[str]) -> None:
  del argv
  for repeat in range(_REPEATS.value):
    if _KEEP.value:
      directory = os.path.join(_KEEP.value, f'job{repeat}')
      os.makedirs(directory)
      print(json.dumps(_measure(directory, _WORKERS.value)), flush=True)
    else:
      with tempfile.TemporaryDirectory() as directory:
        print(json.dumps(_measure(directory, _WORKERS.value)), flush=True)


if __name__ == '__main__':
  app.run(main)
