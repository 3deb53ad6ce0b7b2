"""The algorithm: the distributed critic and generator steps, the losses and the gradient
penalty, the conditioning (how the critic uses the label), optimizers, mixed precision, the EMA
of the generator, stateless random keys.

Imports nothing above itself in wgan_dist (only `config/`)."""
