"""Offline evaluation of a generator: a small MNIST classifier the project trains itself, the
metrics built on it (Fréchet distance of its features, classifier score, class histogram), and
an `Evaluator` that generates images across replicas and scores them.

`classifier`: the CNN, its committed weights and the embedded sample's train / held-out split.
`train_classifier`: `python -m wgan_dist.eval.train_classifier` retrains those weights.
`metrics`: numpy-only metric math (float64). `evaluator`: `Evaluator(config, strategy)`.
"""
