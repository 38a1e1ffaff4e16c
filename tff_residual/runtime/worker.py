"""A TFF worker for runs on other machines: ``python -m tff_residual.runtime.worker --port P``.

Runs TFF 0.87's C++ ``worker_binary`` (CPU-only) in the foreground, serving on
``[::]:P`` without TLS or authentication: anyone who reaches the port can run
computations there, so keep it on a private network. A run reaches it with
``--workers=host:P[,host2:P2...]`` (or ``managed_tff_runtime(workers=[...])``)
and does not stop it.

SIGTERM or SIGINT stop the worker binary (SIGTERM, then SIGKILL after 5 s) and
exit 0; the binary also dies with this process (``PR_SET_PDEATHSIG``). The
binary's own output goes to ``--log`` (default: discarded).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tff_residual.runtime.worker", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--port", type=int, required=True, help="port to serve on, on [::]")
  parser.add_argument("--max_concurrent_computation_calls", type=int, default=-1)
  parser.add_argument("--log", default=None, help="file for the worker binary's output")
  args = parser.parse_args(argv)
  if not 0 < args.port < 65536:
    parser.error(f"--port must be in 1-65535, got {args.port}")

  from tff_residual.runtime import worker_process  # no TF import: starts at once
  process = worker_process.start_worker(args.port, args.max_concurrent_computation_calls,
                                        args.log)
  stopped_by = []

  def stop(signum, frame):
    del frame
    stopped_by.append(signal.Signals(signum).name)

  signal.signal(signal.SIGTERM, stop)
  signal.signal(signal.SIGINT, stop)
  print(f"tff_residual.runtime.worker: serving on [::]:{args.port} (worker pid {process.pid})",
        file=sys.stderr, flush=True)
  while not stopped_by and process.poll() is None:
    time.sleep(0.2)  # not a blocking wait: a handler runs between two sleeps
  if stopped_by:
    worker_process.stop_process(process)
    print(f"tff_residual.runtime.worker: stopped by {stopped_by[0]}", file=sys.stderr, flush=True)
    return 0
  print(f"tff_residual.runtime.worker: the worker binary exited with code {process.returncode}",
        file=sys.stderr, flush=True)
  return 1


if __name__ == "__main__":
  sys.exit(main())
