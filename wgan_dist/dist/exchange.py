"""`exchange`: every worker of a multi-worker job publishes a value and reads every worker's,
through the coordination service's key-value store.

No collective is involved: it compares what the workers chose or loaded (devices.py, the run
identity) before the first collective, which a disagreement could hang.
"""

import json
from typing import Any

# exchange calls so far in this process: their keys are numbered by it, so that a second
# multi-worker run in one process (tests) does not find the first one's keys (every worker makes
# the same calls in the same order, so the numbers match across workers).
_EXCHANGES = [0]


def exchange(name: str, value: Any, tasks: list[tuple[str, int, str]], me: tuple[str, int],
             timeout_secs: float, store=None) -> dict[tuple[str, int, str], Any]:
  """{(job, index, address): its value} of every worker of `tasks`, this one's being `value`.

  `value` must survive JSON. `tasks`: (job, index, address) of every worker
  (distribution.cluster_tasks()); `me`: this one's (job, index). Call after the strategy exists
  (it starts the coordination service). Waits at most `timeout_secs` for each worker's value.
  `store`: the coordination service's key-value store (TensorFlow's context; tests pass a fake).
  """
  if store is None:
    from tensorflow.python.eager import context  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
    store = context.context()
  _EXCHANGES[0] += 1
  prefix = f'wgan_dist/{name}/{_EXCHANGES[0]}'
  job, index = me
  store.set_config_key_value(f'{prefix}/{job}/{index}', json.dumps(value))
  return {(other_job, other_index, address): json.loads(store.get_config_key_value(
              f'{prefix}/{other_job}/{other_index}', int(timeout_secs * 1000)))
          for other_job, other_index, address in tasks}


def describe_task(task: tuple[str, int, str]) -> str:
  """'worker 1 (host1:2222)'."""
  job, index, address = task
  return f'{job} {index} ({address})'
