"""The on-device robustness suite's library: data, zoo, convert, attack, runtime, report.

Importing the package installs the framework import guard (see
:mod:`harness.frameworks`) so that TensorFlow and PyTorch can share a process in
either import order.
"""

from harness import frameworks as _frameworks

_frameworks.install_import_guard()

__version__ = "0.1.0"
