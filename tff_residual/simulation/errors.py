"""The simulation's error for a setting that cannot work, in a module of its own so that
``config`` and ``federation`` (which ``config`` reads lazily) both import it without an
import cycle."""


class ConfigError(ValueError):
  """An invalid setting; the CLI prints it as one line and exits with 2."""
