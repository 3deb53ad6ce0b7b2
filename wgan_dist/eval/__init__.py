"""Evaluation of a generator: Fréchet distance, KID and improved precision / recall of features
of generated and real images, a classifier (or Inception) score, and for MNIST a class
histogram; memorisation; an `Evaluator` that generates images across replicas and scores them.

`classifier`: the small MNIST CNN, its committed weights and the embedded sample's train /
held-out split (MNIST data, offline). `train_classifier`:
`python -m wgan_dist.eval.train_classifier` retrains those weights. `inception`: InceptionV3 pool features and ImageNet probabilities from a
local weights file (`eval_inception_weights`; other RGB or grayscale data). `metrics`:
numpy-only metric math (float64); `kid`, `precision_recall`, `memorisation` on top of
`distances` (blocked float64 nearest neighbours), numpy only too. `protocol`: the quantisation
and the weights' hash every figure names; `records`: workdir/eval/records.jsonl.
`evaluator`: `Evaluator(config, strategy)`.
"""
