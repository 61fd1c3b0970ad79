"""The package's version, in a leaf module that any layer may import (``_meter`` does).

The one place it is written: pyproject.toml reads it from here (``[tool.hatch.version]``).
"""

__version__ = "0.1.0"
