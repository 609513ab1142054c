"""Stopping on SIGTERM: one request, honoured at the next safe point.

The handler records the request and raises `Preempted` at once; if Python swallows that
exception (a handler that fires inside a finaliser or a generator's clean-up only prints
"Exception ignored"), the recorded request is honoured at the next `check()` — between
(method, seed) runs and between stages — so a SIGTERM can delay a run, never be lost.  The
training loops keep their own flag (they checkpoint before stopping).  The CLI turns
`Preempted` into one line and exit code 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable

REQUESTED = threading.Event()


class Preempted(Exception):
  """A stage stopped on SIGTERM with what it finished kept; the CLI exits 0."""


def request(message: str) -> None:
  """Records a stop request and raises it: the body of every SIGTERM handler."""
  REQUESTED.set()
  raise Preempted(message)


def check(message: Callable[[], str] | str = "stopped on SIGTERM") -> None:
  if REQUESTED.is_set():
    raise Preempted(message() if callable(message) else message)


@contextlib.contextmanager
def on_sigterm(message: Callable[[], str]):
  """Within the block, SIGTERM raises Preempted(message()) (main thread only; elsewhere a
  no-op); the previous handler is restored after."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def stop(signum, frame):
    del signum, frame
    request(message())

  old = signal.signal(signal.SIGTERM, stop)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, old)
