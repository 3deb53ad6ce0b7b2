"""Evaluation of a generator: Fréchet distance of features of generated and real images, a
classifier (or Inception) score, and for MNIST a class histogram; an `Evaluator` that generates
images across replicas and scores them.

`classifier`: the small MNIST CNN, its committed weights and the embedded sample's train /
held-out split (MNIST data, offline). `train_classifier`:
`python -m wgan_dist.eval.train_classifier` retrains those weights. `inception`: InceptionV3 pool features and ImageNet probabilities from a
local weights file (`eval_inception_weights`; other RGB or grayscale data). `metrics`:
numpy-only metric math (float64). `evaluator`: `Evaluator(config, strategy)`.
"""
