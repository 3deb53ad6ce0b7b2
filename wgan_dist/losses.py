"""The public name of the loss functions: `wgan_dist.losses.gradient_penalty(critic, real, fake,
epsilon)` and the rest of `wgan_dist.algorithm.losses`, re-exported so code written against the
flat layout keeps working."""

# pylint: disable=wildcard-import,unused-wildcard-import
from wgan_dist.algorithm.losses import *  # noqa: F401,F403
