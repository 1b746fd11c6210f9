"""One module per model format; each loads a model into a :class:`Backend`."""
