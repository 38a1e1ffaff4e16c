import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # numpy_oracle

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
FMNIST_UNAVAILABLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  ".venv", ".fmnist-unavailable")
"""Written by ``make venv`` (scripts/install.sh) when it could not install Debian's
dataset-fashion-mnist (not root, no apt), with the reason."""


@pytest.fixture
def fashion_mnist():
  """For a test that reads Fashion-MNIST from the install: it skips, with the install's
  reason, only where ``make venv`` recorded that it could not install the data, and fails
  (saying how to install it) where the data is missing without such a record."""
  from tff_residual.tasks import fmnist
  if os.path.exists(FMNIST_UNAVAILABLE):
    pytest.skip(open(FMNIST_UNAVAILABLE).read().strip())
  assert fmnist.available(), ("Fashion-MNIST is missing although the install did not record why; "
                              "run `make venv` as root (it installs dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def tff_runtime():
  """One owned TFF C++ runtime for the session; its worker is stopped at the end."""
  from tff_residual.runtime.managed import managed_tff_runtime
  with managed_tff_runtime() as runtime:
    yield runtime
