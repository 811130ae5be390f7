"""Root pytest configuration.

Importing ``harness`` first installs the framework import guard for every test
process (pytest-xdist workers included), whatever the tests import afterwards.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402,F401  (the import guard; see harness/frameworks.py)
