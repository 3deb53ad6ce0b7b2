"""GPU smoke test: does training work on this node's GPUs? `launch/gpu_smoke.sh` runs it.

One line per check, `ok` or `FAIL` and what was compared; exit status 1 if any check failed:
- the tiny config (configs/mnist.py:tiny) trains on 1 GPU and on 2 logical GPUs (the first GPU
  split in two) under float32, mixed_float16 and mixed_bfloat16, with jit_compile off and on:
  every loss finite;
- 1 GPU and 2 logical GPUs agree per step, losses to 1e-3 relative or 1e-4 absolute (float32,
  allow_tf32=False: TF32 rounds matmul inputs to about 1e-3 by itself);
- a run stopped at step 2 and resumed to step 4 ends bit-identical to an uninterrupted one, with
  TF_DETERMINISTIC_OPS=1 (docs/distributed.md, "Exactness");
- with 2 or more physical GPUs: a MirroredStrategy with NCCL all-reduce over 2 of them trains
  and agrees with 1 GPU to the same bounds.

Without a GPU it prints `gpu_smoke: no GPU ...` and exits 0 (CI runs this mode). With
`--rehearse_on_cpu` it runs the same checks on CPU devices instead (logical CPUs for the two
devices; the float32 reference runs only, no NCCL), to check the checks themselves on a machine
without GPUs.

Each device setup runs in a child process (`--child=...`): logical devices must be configured
before TensorFlow initialises its devices, once per process. A child that has not finished
after `--child_timeout_secs` (default 1800) is killed and its checks FAIL, naming it.
`--skip_resume` leaves out the exact-resume check (the test suite's rehearsal: it checks
resuming on CPUs itself).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from wgan_dist.config import tf_log_level

# Like the other commands: TensorFlow's C++ start-up lines hidden unless the user set the level
# (the children inherit it).
tf_log_level.quiet_by_default()

# Per-step agreement of 1 and 2 devices, and of NCCL, in float32 without TF32: of the losses,
# to 1e-3 relative: replica batches of another shape sum in another order. The runs train with
# Adam epsilon 1e-3, as the CPU tests do (tests/test_replica_invariance.py, which hold 1e-4 on
# CPUs): with the default 1e-7 a gradient element within rounding of 0 moves by a whole learning
# rate, which alone moved the tiny run's losses by up to 1.9e-3 relative on CPUs. GPU kernels
# may sum in more orders than the CPU's, hence the wider bound here.
AGREEMENT_RTOL = 1e-3
AGREEMENT_ATOL = 1e-4
AGREEMENT_METRICS = ('critic_loss', 'gradient_penalty', 'wasserstein_estimate', 'generator_loss')
_RESULT = 'RESULT '


def _tiny_config(precision: str, jit: bool, allow_tf32: bool, devices: int, on_gpu: bool,
                 all_reduce: str = 'auto'):
  from configs import mnist  # pylint: disable=import-outside-toplevel
  config = mnist.get_config('tiny')
  config.data.allow_download = False
  config.mixed_precision = precision
  config.train.jit_compile = jit
  config.allow_tf32 = allow_tf32
  config.distribution.strategy = 'mirrored' if devices > 1 else 'one_device'
  config.distribution.cpu_replicas = 0 if on_gpu else devices
  config.distribution.all_reduce = all_reduce
  config.train.adam_epsilon = 1e-3  # See AGREEMENT_RTOL.
  return config


def _train_steps(config, num_steps: int) -> dict:
  """Per-step metrics of `num_steps` one-step calls, as train_and_evaluate builds them."""
  from wgan_dist.dist import distribution  # pylint: disable=import-outside-toplevel
  from wgan_dist.data import sources  # pylint: disable=import-outside-toplevel
  from wgan_dist.training import state as train_state  # pylint: disable=import-outside-toplevel
  from wgan_dist.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  strategy = distribution.create_strategy(config)
  state = train_state.create_train_state(config, strategy)
  trainer = trainer_lib.Trainer(strategy=strategy, config=config, state=state,
                                source=sources.load_source(config))
  history = []
  for _ in range(num_steps):
    metrics, _ = trainer.train(1)
    history.append(metrics)
  cross_device_ops = getattr(strategy.extended, '_cross_device_ops', None)
  return {'replicas': strategy.num_replicas_in_sync,
          'devices': [str(device) for device in strategy.extended.worker_devices],
          'all_reduce': type(cross_device_ops).__name__ if cross_device_ops else None,
          'history': history}


def _child_train(args) -> None:
  """Trains every configuration of the matrix on `args.devices` devices; one RESULT per run."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  on_gpu = not args.cpu
  if on_gpu and args.devices == 2 and not args.physical:
    gpu = tf.config.list_physical_devices('GPU')[0]
    tf.config.set_logical_device_configuration(
        gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=1024)] * 2)
  # NCCL needs distinct physical GPUs; two halves of one GPU sum through one device.
  all_reduce = ('nccl' if args.physical else 'reduce_to_one_device') if args.devices > 1 else 'auto'
  runs = [('float32', False, False, 3)]  # The agreement reference: full float32.
  if not args.reference_only:
    # The rehearsal on CPUs checks the checks: the reference run above is enough.
    matrix = ([(precision, jit) for precision in ('float32', 'mixed_float16', 'mixed_bfloat16')
               for jit in (False, True)] if on_gpu else [])
    runs += [(precision, jit, True, 2) for precision, jit in matrix]
  for precision, jit, allow_tf32, num_steps in runs:
    config = _tiny_config(precision, jit, allow_tf32, args.devices, on_gpu, all_reduce)
    result = {'precision': precision, 'jit_compile': jit, 'allow_tf32': allow_tf32}
    try:
      result.update(_train_steps(config, num_steps))
    except Exception as error:  # pylint: disable=broad-except
      result['error'] = f'{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}'
    print(_RESULT + json.dumps(result), flush=True)


def _child_resume(args) -> None:
  """4 steps straight vs 2 + 2 resumed; RESULT: whether every checkpointed tensor is equal."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from wgan_dist import train  # pylint: disable=import-outside-toplevel
  config = _tiny_config('float32', False, True, 1, not args.cpu)
  config.eval_every_steps = 0
  straight, resumed = os.path.join(args.workdir, 'straight'), os.path.join(args.workdir, 'resumed')
  result = {}
  try:
    train.train_and_evaluate(config, straight)
    config.train.num_steps = 2
    train.train_and_evaluate(config, resumed)
    config.train.num_steps = 4
    train.train_and_evaluate(config, resumed)
    readers = [tf.train.load_checkpoint(os.path.join(workdir, 'checkpoints'))
               for workdir in (straight, resumed)]
    names = sorted(readers[0].get_variable_to_shape_map())
    different = [name for name in names if name != '_CHECKPOINTABLE_OBJECT_GRAPH' and not
                 np.array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name))]
    result.update(tensors=len(names), different=different[:5], num_different=len(different))
  except Exception as error:  # pylint: disable=broad-except
    result['error'] = f'{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}'
  print(_RESULT + json.dumps(result), flush=True)


def _run_child(arguments: list[str], env_update: dict, label: str,
               timeout_secs: float) -> list[dict]:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get('TF_CPP_MIN_LOG_LEVEL', '3'),
             **env_update)
  try:
    process = subprocess.run([sys.executable, '-m', 'wgan_dist.gpu_smoke', *arguments],
                             env=env, capture_output=True, text=True, check=False,
                             timeout=timeout_secs)
  except subprocess.TimeoutExpired:  # A hung driver or collective: the check fails, not hangs.
    return [{'error': f'{label}: the child process did not finish within {timeout_secs:g} s '
                      '(--child_timeout_secs); killed'}]
  results = [json.loads(line[len(_RESULT):]) for line in process.stdout.splitlines()
             if line.startswith(_RESULT)]
  if process.returncode != 0 or not results:
    tail = ' | '.join(process.stderr.strip().splitlines()[-3:])
    return [{'error': f'{label}: the child process failed (status {process.returncode}): {tail}'}]
  return results


class _Report:
  """Prints one line per check and remembers whether any failed."""

  def __init__(self):
    self.failed = 0

  def check(self, ok: bool, detail: str, what: str) -> None:
    self.failed += not ok
    print(f'{"ok  " if ok else "FAIL"} {what}: {detail}', flush=True)


def _finite(result: dict) -> tuple[bool, str]:
  if 'error' in result:
    return False, result['error']
  values = [value for metrics in result['history'] for value in metrics.values()]
  bad = [value for value in values if not (value == value and abs(value) != float('inf'))]
  if bad:
    return False, f'{len(bad)} non-finite metric values'
  losses = ', '.join(f'{metrics["critic_loss"]:.4g}' for metrics in result['history'])
  devices = ', '.join(device.rpartition('device:')[2] for device in result['devices'])
  return True, (f'{len(result["history"])} steps on {result["replicas"]} replica(s) '
                f'({devices}), critic losses {losses}')


def _agreement(reference: dict, other: dict) -> tuple[bool, str]:
  if 'error' in reference or 'error' in other:
    return False, reference.get('error') or other.get('error')
  worst = 0.0
  for want, got in zip(reference['history'], other['history']):
    for name in AGREEMENT_METRICS:
      value = want[name]
      excess = abs(got[name] - value) - (AGREEMENT_ATOL + AGREEMENT_RTOL * abs(value))
      worst = max(worst, abs(got[name] - value) / max(abs(value), 1e-12))
      if excess > 0:
        return False, f'{name} {got[name]!r} vs {value!r} (rtol {AGREEMENT_RTOL:g})'
  return True, (f'{len(reference["history"])} steps, every loss within rtol '
                f'{AGREEMENT_RTOL:g} (largest relative difference {worst:.2g})')


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rehearse_on_cpu', action='store_true')
  parser.add_argument('--child', choices=('train', 'resume'))
  parser.add_argument('--devices', type=int, default=1)
  parser.add_argument('--physical', action='store_true')
  parser.add_argument('--cpu', action='store_true')
  parser.add_argument('--reference_only', action='store_true')
  parser.add_argument('--workdir', default='')
  parser.add_argument('--child_timeout_secs', type=float, default=1800.0)
  parser.add_argument('--skip_resume', action='store_true')
  args = parser.parse_args(argv)
  if args.child_timeout_secs <= 0:
    parser.error(f'--child_timeout_secs={args.child_timeout_secs:g} is not allowed; allowed: '
                 '> 0 seconds')
  if args.child == 'train':
    _child_train(args)
    return 0
  if args.child == 'resume':
    _child_resume(args)
    return 0

  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  gpus = tf.config.list_physical_devices('GPU')
  cuda = os.environ.get('CUDA_VISIBLE_DEVICES')
  if not gpus and not args.rehearse_on_cpu:
    print(f'gpu_smoke: no GPU: TensorFlow {tf.__version__} sees none (CUDA_VISIBLE_DEVICES='
          f'{cuda if cuda is not None else "unset"}, built with CUDA: '
          f'{tf.test.is_built_with_cuda()}); nothing checked', flush=True)
    return 0
  on_cpu = not gpus
  kind = 'CPU' if on_cpu else 'GPU'
  print(f'gpu_smoke: {len(gpus)} GPU(s)' if gpus else
        'gpu_smoke: no GPU: rehearsing the checks on the CPU (the float32 reference runs, no '
        'NCCL)', flush=True)
  started = time.monotonic()
  report = _Report()
  device_flags = ['--cpu'] if on_cpu else []
  # One GPU (the first); its two halves; the first two physical GPUs.
  first = {} if on_cpu else {'CUDA_VISIBLE_DEVICES': cuda.split(',')[0] if cuda else '0'}
  timeout = args.child_timeout_secs
  one = _run_child(['--child=train', '--devices=1', *device_flags], first, f'1 {kind}', timeout)
  two = _run_child(['--child=train', '--devices=2', *device_flags], first, f'2 logical {kind}s',
                   timeout)
  for results, label in ((one, f'1 {kind}'), (two, f'2 logical {kind}s')):
    for result in results:
      ok, detail = _finite(result)
      name = (f'train {label} {result.get("precision", "")} jit_compile='
              f'{result.get("jit_compile", "")}' + ('' if result.get('allow_tf32', True)
                                                      else ' allow_tf32=False'))
      report.check(ok, detail, what=name)
  report.check(*_agreement(one[0], two[0]), what=f'1 {kind} vs 2 logical {kind}s agree')

  if args.skip_resume:
    resume = None
  else:
    with tempfile.TemporaryDirectory(prefix='gpu_smoke_') as workdir:
      resume = _run_child(['--child=resume', f'--workdir={workdir}', *device_flags],
                          dict(first, TF_DETERMINISTIC_OPS='1'), 'resume', timeout)[0]
  if resume is None:
    print('skip exact resume: --skip_resume', flush=True)
  elif 'error' in resume:
    report.check(False, resume['error'], what='exact resume (TF_DETERMINISTIC_OPS=1)')
  else:
    report.check(resume['num_different'] == 0,
                 f'4 steps straight vs 2 + 2 resumed: {resume["tensors"]} checkpointed tensors, '
                 f'{resume["num_different"]} different {resume["different"]}',
                 what='exact resume (TF_DETERMINISTIC_OPS=1)')

  if len(gpus) >= 2:
    visible = (cuda.split(',')[:2] if cuda else ['0', '1'])
    nccl = _run_child(['--child=train', '--devices=2', '--physical', '--reference_only'],
                      {'CUDA_VISIBLE_DEVICES': ','.join(visible)}, 'NCCL', timeout)[0]
    ok, detail = _finite(nccl)
    ok = ok and nccl.get('all_reduce') == 'NcclAllReduce'
    report.check(ok, f'{detail}; all-reduce {nccl.get("all_reduce")}',
                 what='NCCL all-reduce over 2 physical GPUs trains')
    report.check(*_agreement(one[0], nccl), what='1 GPU vs 2 GPUs with NCCL agree')
  elif gpus:
    print('skip NCCL: only 1 physical GPU', flush=True)
  print(f'gpu_smoke: {report.failed} of the checks failed; '
        f'{time.monotonic() - started:.0f} s', flush=True)
  return 1 if report.failed else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
