"""Models: the architectures by name (`architectures.ARCHITECTURES`, `build_models`), their
shared layers, the CIFAR ResNet and the 64x64 DCGAN. Imports `dist/` (device-dependent
choices), `algorithm/` (the conditioning's critic head) and `config/`."""
