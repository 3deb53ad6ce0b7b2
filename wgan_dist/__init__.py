"""wgan_dist: WGAN-GP (Gulrajani et al. 2017, Algorithm 1) on tf.distribute.

The command lines live here (`main`, `sample`, `evaluate`, `export`, `report`, `bench`,
`gpu_smoke`), beside `train` (`train_and_evaluate(config, workdir)`, the whole job) and
`losses` (the public name of the gradient penalty). The logic lives in subpackages, each
importing only those below it:

  tools/     restore a work directory's generator, sampling, the benchmark
  training/  trainer, controller and periodic actions, train state, checkpoints, monitoring
  models/    architectures by name, shared layers, ResNet, 64x64 DCGAN
  eval/      Fréchet distance, scores, the evaluator          dist/  strategy, devices, peers,
  data/      sources, input pipeline, image grids                    watchdog, signals, OOM
  algorithm/ steps, losses, conditioning, optimizers, precision, EMA, random keys
  config/    registries (docs/extending.md), allowed values and validation
"""
