#!/usr/bin/env python
"""The experiment CLI, ``tff_residual.cli`` through ``tff_residual.entry`` (also the console
script ``tff-residual-run``):

    python experiments/run.py --task=fmnist_backdoor --aggregator=fedavg,median,residual
    python experiments/run.py --help
"""

import sys

from tff_residual.entry import main

if __name__ == "__main__":
  sys.exit(main())
