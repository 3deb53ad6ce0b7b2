"""Helpers of the command-line tools: restoring a work directory's generator, sampling and the
benchmark. Imports everything below; only the commands in
`wgan_dist/` (main, sample, evaluate, ...) import it."""
