"""The package's version, in a leaf module that any layer may import (``_meter`` does).

Keep it equal to ``version`` in pyproject.toml.
"""

__version__ = "0.1.0"
