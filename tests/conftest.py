import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # numpy_oracle

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(scope="session")
def tff_runtime():
  """One owned TFF C++ runtime for the session; its worker is stopped at the end."""
  from tff_residual.simulation.runtime import managed_tff_runtime
  with managed_tff_runtime() as runtime:
    yield runtime
