"""CLI: `xdkt <command> --config=CFG [--config.x.y=v ...] [flags]`.  Thin: flags → config →
one library call.

  xdkt run   --config=configs/default.py --workdir=runs/default
  xdkt stats --config=configs/default.py [--json]
  xdkt embed --config=CFG --texts=FILE --out=OUT.npy [--workdir=DIR]

A user's mistake (bad file, bad config value) ends with one line on stderr and exit code 2;
set XDKT_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys

from absl import flags
from ml_collections import config_flags

from xdkt_jax import config_check

COMMANDS = ("run", "stats", "embed")


def parse(argv: list[str]):
  """argv (program name first) → (command, config, flag values).  Re-entrant: every call gets
  its own FlagValues, so tests can parse in-process."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "experiment config file", flag_values=fv, lock_config=True, sys_argv=argv
  )
  flags.DEFINE_string("workdir", "", "run directory (artifacts, checkpoints)", flag_values=fv)
  flags.DEFINE_boolean("json", False, "stats: print one JSON object", flag_values=fv)
  flags.DEFINE_string("texts", "", "embed: text file, one text per line", flag_values=fv)
  flags.DEFINE_string("out", "", "embed: output .npy", flag_values=fv)
  path = _config_path(argv)
  if path is not None and not os.path.isfile(path):
    raise UsageError(f"--config={path}: no such config file")
  try:
    rest = fv(argv)
  except (AttributeError, KeyError):  # an override naming no field: which, and a hint
    raise UsageError(_unknown_field(argv, path)) from None
  positional = rest[1:]
  if len(positional) != 1 or positional[0] not in COMMANDS:
    raise UsageError(
      f"usage: xdkt {{{'|'.join(COMMANDS)}}} --config=CFG ... "
      f"(got {' '.join(positional) or 'no command'})"
    )
  if fv["config"].value is None:
    raise UsageError("--config=CFG is required (e.g. --config=configs/default.py)")
  config = fv["config"].value
  try:
    config.keys()
  except OSError as e:  # the file exists but does not load (syntax, no get_config)
    raise UsageError(f"--config={path}: {str(e).splitlines()[0]}") from None
  config_check.check(config)
  return positional[0], config, fv


def _config_path(argv: list[str]) -> str | None:
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown_field(argv: list[str], path: str | None) -> str:
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "", flag_values=fv, lock_config=True, sys_argv=["xdkt", f"--config={path}"]
  )
  fv(["xdkt", f"--config={path}"])
  keys = config_check.flat_keys(fv["config"].value)
  bad = config_check.unknown_overrides(argv, keys)
  return (
    config_check.unknown_field_message(bad[0], keys)
    if bad
    else "a --config.* override names no config field"
  )


class UsageError(ValueError):
  pass


def main(argv: list[str]) -> int:
  from xdkt_jax import pipeline  # pylint: disable=import-outside-toplevel
  from xdkt_jax.train.writers import maybe_initialize_distributed  # pylint: disable=import-outside-toplevel

  cmd, config, fv = parse(argv)
  if cmd != "stats":
    maybe_initialize_distributed(config)  # before anything touches a device
  if cmd == "stats":
    st = pipeline.stats(config)
    if fv["json"].value:
      print(json.dumps(st))
    else:
      from xdkt_jax.data.stats import format_table  # pylint: disable=import-outside-toplevel

      print(format_table(st))
    return 0
  if cmd == "run":
    if not fv["workdir"].value:
      raise UsageError("xdkt run needs --workdir=DIR")
    config_check.check_workdir(fv["workdir"].value)
    pipeline.run(config, fv["workdir"].value)
    return 0
  if cmd == "embed":
    if not fv["texts"].value or not fv["out"].value:
      raise UsageError("xdkt embed needs --texts=FILE and --out=OUT.npy")
    pipeline.embed(config, fv["texts"].value, fv["out"].value, workdir=fv["workdir"].value)
    return 0
  return 2


_FS_ERRORS = {
  errno.ENOSPC: "free some space or choose another --workdir / data.cache_dir; rerun to "
  "resume (finished stages are kept)",
  errno.EDQUOT: "the disk quota is used up; free some space, then rerun to resume",
  errno.EACCES: "check the permissions of that path",
  errno.EPERM: "check the permissions of that path",
  errno.EROFS: "the filesystem is read-only; choose another --workdir / data.cache_dir",
  errno.ENOTDIR: "a file stands where a folder must be",
  errno.EISDIR: "a folder stands where a file must be",
}


def cli() -> None:
  """Console-script entry point."""
  from xdkt_jax.data.leakage import LeakageError  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.schema import DataError  # pylint: disable=import-outside-toplevel
  from xdkt_jax import stopping  # pylint: disable=import-outside-toplevel

  # Between the stages' own handlers (the training loops checkpoint first, the recommend stage
  # names what it kept) a SIGTERM stops the run; every finished stage is sealed, so a rerun
  # resumes.  Once the run is over, a late SIGTERM just ends the process with its own code.
  over = {}

  def stop(signum, frame):
    del signum, frame
    if "code" in over:
      os._exit(over["code"])  # pylint: disable=protected-access
    stopping.request(
      "stopped on SIGTERM; finished stages are kept; rerun the same command to resume"
    )

  signal.signal(signal.SIGTERM, stop)
  try:
    code = main(sys.argv)
    over["code"] = code
  except stopping.Preempted as e:
    print(f"xdkt: {e}", file=sys.stderr)
    code = 0
  except LeakageError as e:
    # A split (shipped or made) that lets an evaluated answer reach training: one line, no
    # result written.
    if os.environ.get("XDKT_DEBUG"):
      raise
    print(f"xdkt: error: leakage: {e}", file=sys.stderr)
    code = 2
  except (DataError, UsageError, flags.Error) as e:
    if os.environ.get("XDKT_DEBUG"):
      raise
    print(f"xdkt: error: {e}", file=sys.stderr)
    code = 2
  except (ValueError, FileNotFoundError) as e:
    # Config values and paths a user typed; anything else is a bug and keeps its traceback.
    if os.environ.get("XDKT_DEBUG"):
      raise
    print(f"xdkt: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    code = 2
  except OSError as e:
    # The filesystem said no (disk full, permissions, read-only, a file where a folder must
    # be): one line naming the path; any other OSError is a bug and keeps its traceback.
    if os.environ.get("XDKT_DEBUG") or e.errno not in _FS_ERRORS:
      raise
    print(f"xdkt: error: {e.filename or ''}: {e.strerror}; {_FS_ERRORS[e.errno]}", file=sys.stderr)
    code = 2
  over["code"] = code
  sys.exit(code)


if __name__ == "__main__":
  cli()
