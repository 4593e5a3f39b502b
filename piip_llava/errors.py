"""Exception types for errors a user can cause and fix.

The CLI prints these as one clean line (no traceback); anything else is a bug and keeps its traceback.
Each also derives from the builtin a caller would naturally catch (``ValueError``, ``KeyError`` ...).
"""


class PiipLlavaError(Exception):
    """Base class: the message names the problem and the fix."""


class UnknownArchitectureError(PiipLlavaError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(PiipLlavaError, ValueError):
    """A config file or option is invalid."""
