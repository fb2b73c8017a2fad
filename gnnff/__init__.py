"""gnnff: stable graph-neural-network force fields (see README.md).

``__version__`` is the project's one version source: ``pyproject.toml`` reads it
(``[tool.setuptools.dynamic]``) and model files and reports record it.
"""

__version__ = "0.1.0"
