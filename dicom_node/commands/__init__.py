"""Sub-commands of the `dicom-node` command line, one module per command group.

Each module has ``register(commands)``, which adds its parser(s) to the sub-parser action and
sets ``handler`` (a function of the parsed arguments returning the exit status) as a default.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID_CONFIG = 2

__all__ = ["EXIT_FAILURE", "EXIT_INVALID_CONFIG", "EXIT_OK"]
