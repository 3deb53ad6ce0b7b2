"""tools/history.py in-process (the fast tier; `evaluate --all_checkpoints` runs it end to end
in tests/test_eval_protocol.py): scored checkpoints become points of the run's TensorBoard
curves at their steps, read back with TensorBoard's reader, and rows of the history CSV."""

import numpy as np

from tests import helpers
from wgan_dist.eval import evaluator as evaluator_lib
from wgan_dist.tools import history
from wgan_dist.tools import restore


def _result(step: int, fid: float, ema: bool) -> history.Result:
  restored = restore.Restored(config=None, generator=None, step=step,
                              checkpoint=f'/run/checkpoints/ckpt-{step}', ema=ema)
  evaluation = evaluator_lib.Evaluation(
      scalars={'eval/fid': fid, 'eval/classifier_score': 8.0 + step / 1000},
      class_histogram=np.full(10, 0.1), num_samples=100, stds={'eval/fid': 0.5})
  return restored, evaluation


def test_scored_checkpoints_become_curve_points_at_their_steps(tmp_path):
  workdir = str(tmp_path)
  history.write_events(workdir, [_result(200, 30.0, ema=False), _result(400, 12.5, ema=False)])
  history.write_events(workdir, [_result(400, 11.0, ema=True)])
  assert helpers.event_scalars(workdir, 'eval/fid') == {200: 30.0, 400: 12.5}
  assert helpers.event_scalars(workdir, 'eval/fid_std') == {200: 0.5, 400: 0.5}
  # The EMA generator's figures go to the run train/ema under the same tags, beside the raw
  # generator's curve in TensorBoard.
  assert helpers.event_scalars(workdir, 'eval/fid', run='train/ema') == {400: 11.0}
  np.testing.assert_allclose(helpers.event_scalars(workdir, 'eval/classifier_score')[400], 8.4,
                             rtol=1e-6)  # Stored as float32.


def test_the_csv_has_a_row_per_checkpoint_oldest_first(tmp_path):
  workdir = str(tmp_path)
  path = history.write_csv(workdir, [_result(200, 30.0, ema=False), _result(400, 12.5, ema=False)])
  assert path == history.csv_path(workdir, ema=False)
  rows = history.read_csv(path)
  assert [(row['step'], row['generator'], float(row['eval/fid'])) for row in rows] == [
      ('200', 'raw', 30.0), ('400', 'raw', 12.5)]
  assert rows[1]['checkpoint'] == '/run/checkpoints/ckpt-400'
  assert float(rows[0]['eval/fid_std']) == 0.5
  assert history.write_csv(workdir, []) is None
  assert history.write_csv(workdir, [_result(400, 11.0, ema=True)]).endswith('history_ema.csv')
