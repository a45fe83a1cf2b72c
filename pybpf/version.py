"""The version of the distribution: the one place it is written.

``pybpf.__version__``, the commands' ``--version``, the wheel (pyproject.toml reads it from
here), the .deb and the zipapps all take it from this line.
"""

__version__ = "0.1.0"
