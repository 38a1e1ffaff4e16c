#!/usr/bin/env python
"""The experiment CLI, ``tff_residual.cli`` (also the console script ``tff-residual-run``):

    python experiments/run.py --task=fmnist_backdoor --aggregator=fedavg,median,residual
    python experiments/run.py --help
"""

import sys

from tff_residual.cli import main

if __name__ == "__main__":
  sys.exit(main())
