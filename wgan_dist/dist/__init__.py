"""Distribution and robustness: the tf.distribute strategy, device choices, peers of a
multi-worker job and the values they exchange before training, the watchdog, stop signals and
out-of-memory errors. Imports only `config/` from wgan_dist."""
