"""Models: the ``Model`` protocol and the built-in offline and scripted models."""
