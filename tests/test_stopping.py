"""A SIGTERM is one request: raised at once inside `on_sigterm`, and if that exception is
swallowed, honoured at the next `check()` (between runs, between stages)."""

import os
import signal

import pytest

from xdkt_jax import stopping


@pytest.fixture(autouse=True)
def fresh_request():
  stopping.REQUESTED.clear()
  yield
  stopping.REQUESTED.clear()


def test_sigterm_inside_the_block_raises_with_the_message_and_restores_the_handler():
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(stopping.Preempted, match="recommend: 2 of 6 kept"):
    with stopping.on_sigterm(lambda: "recommend: 2 of 6 kept"):
      os.kill(os.getpid(), signal.SIGTERM)
  assert stopping.REQUESTED.is_set()
  assert signal.getsignal(signal.SIGTERM) is before


def test_a_swallowed_request_is_honoured_at_the_next_check():
  with stopping.on_sigterm(lambda: "first"):
    try:
      os.kill(os.getpid(), signal.SIGTERM)
    except stopping.Preempted:
      pass  # e.g. raised inside a finaliser, printed and ignored
  with pytest.raises(stopping.Preempted, match="between stages"):
    stopping.check("between stages")
  with pytest.raises(stopping.Preempted, match="lazy"):
    stopping.check(lambda: "lazy")


def test_check_without_a_request_does_nothing():
  stopping.check("never raised")
  with stopping.on_sigterm(lambda: "unused"):
    stopping.check()
  assert not stopping.REQUESTED.is_set()
