"""Training: the trainer (several steps per tf.function call), the controller and its periodic
actions, the train state, checkpoints, monitoring and the run identity a resume checks. Imports
the levels below (models, eval, dist, data, algorithm, config), never the command-line modules
above."""
