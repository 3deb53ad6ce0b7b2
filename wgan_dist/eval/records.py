"""One JSON record per evaluation, appended to `workdir/eval/records.jsonl`.

Training-time evaluations and `python -m wgan_dist.evaluate` (every checkpoint it scores) both
append here, so a run's directory keeps every figure ever measured on it together with its
protocol: the metrics (means over noise draws, their stds, KID's subset std), N generated,
N reference, reference split, feature extractor and its weights' sha256, image size, resize,
quantisation, seed and draws, step, checkpoint, and which generator (EMA or raw). One line per
record, so a record is never half-read and files from several runs concatenate.
"""

import json
import os
import time
from typing import Optional

import tensorflow as tf

RECORDS_FILE = os.path.join('eval', 'records.jsonl')


def path(workdir: str) -> str:
  return os.path.join(workdir, RECORDS_FILE)


def make_record(report: dict, *, step: int, checkpoint: Optional[str], ema: bool,
                source: str) -> dict:
  """`report` (Evaluation.report()) with what the caller knows: the generator step, the
  checkpoint it came from (None: the live training state), EMA or raw, and `source`
  ('training' or 'evaluate'). The protocol's fields are gathered under 'protocol'."""
  protocol = {**report.get('protocol', {}), 'step': int(step), 'checkpoint': checkpoint,
              'generator': 'ema' if ema else 'raw'}
  metrics = {key: value for key, value in report.items() if key != 'protocol'}
  return {'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'source': source,
          **metrics, 'protocol': protocol}


def append(workdir: str, record: dict) -> str:
  """Appends `record` as one line to workdir/eval/records.jsonl; returns the file's path."""
  target = path(workdir)
  tf.io.gfile.makedirs(os.path.dirname(target))
  line = json.dumps(record, sort_keys=False) + '\n'
  if '://' in target:  # Object stores (gs://) cannot append: rewrite the whole file.
    existing = ''
    if tf.io.gfile.exists(target):
      with tf.io.gfile.GFile(target) as f:
        existing = f.read()
    with tf.io.gfile.GFile(target, 'w') as f:
      f.write(existing + line)
  else:
    with open(target, 'a', encoding='utf-8') as f:
      f.write(line)
  return target


def read(workdir: str) -> list[dict]:
  """Every record of workdir/eval/records.jsonl, oldest first ([] without the file)."""
  target = path(workdir)
  if not tf.io.gfile.exists(target):
    return []
  with tf.io.gfile.GFile(target) as f:
    return [json.loads(line) for line in f if line.strip()]
