"""Models: the architectures by name (`architectures.build_models`), their shared layers, the
CIFAR ResNet and the 64x64 DCGAN. Imports `dist/` (device-dependent choices) and `config/`."""
