"""Streaming line reading for user data files, plain or gzip.

Every reader goes through `open_text` so that the ways a file can be broken on disk (missing,
not UTF-8, a gzip cut short by an interrupted download) all surface as one `DataError` naming
the file and line, never as a bare UnicodeDecodeError / EOFError traceback from deep inside.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

from xdkt_jax.data.schema import DataError

_GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path) -> bool:
  """True when the file starts with the gzip magic (the suffix may lie, e.g. a renamed dump)."""
  with open(path, "rb") as f:
    return f.read(2) == _GZIP_MAGIC


def require_file(path, what: str = "file") -> Path:
  """The path, or a DataError saying it is missing / not a regular file."""
  p = Path(path)
  if not p.exists():
    raise DataError(p, f"{what} not found")
  if not p.is_file():
    raise DataError(
      p,
      f"{what} expected, but this is a directory"
      if p.is_dir()
      else f"{what} expected, but this is not a regular file",
    )
  return p


def require_dir(path) -> Path:
  """The folder, or a DataError saying it is missing / a file."""
  p = Path(path)
  if not p.exists():
    raise DataError(p, "folder not found")
  if not p.is_dir():
    raise DataError(p, "expected a folder of data files, but this is a file")
  try:
    entries = list(p.iterdir())
  except OSError as e:
    raise DataError(
      p, f"cannot list the folder ({e.strerror or e}); check its permissions"
    ) from None
  for q in entries:
    if q.is_symlink() and not q.exists():
      # Otherwise the file would silently count as absent (a dropped domain, no item text).
      raise DataError(q, "a symbolic link to a missing file (or a link loop); fix or remove it")
  return p


_BLOCK = 1 << 22  # bytes decoded at once: big enough to amortise, small enough to stream


class _StreamError(Exception):
  """The byte stream broke (truncated / corrupt gzip) after everything before it was read."""


def _chunks(p: Path) -> Iterator[bytes]:
  """Raw bytes in blocks; a broken gzip raises _StreamError only after all good data."""
  if not is_gzip(p):
    with open(p, "rb") as f:
      while data := f.read(_BLOCK):
        yield data
    return
  with gzip.open(p, "rb") as f:
    while True:
      parts, size = [], 0
      try:
        # read1 returns what one decompress step produced, so a truncated stream still
        # hands over every byte before the cut and the error names the right line.
        while size < _BLOCK and (data := f.read1(1 << 20)):
          parts.append(data)
          size += len(data)
      except EOFError as e:
        yield b"".join(parts)
        raise _StreamError(f"truncated gzip stream ({e})") from None
      except (gzip.BadGzipFile, zlib.error, OSError) as e:
        yield b"".join(parts)
        raise _StreamError(f"corrupt gzip stream ({e})") from None
      if not parts:
        return
      yield b"".join(parts)


def read_blocks(path) -> Iterator[tuple[int, list[str]]]:
  """Yield (line number of the first line, lines without line breaks), block by block.

  gzip is detected by content, so `x.json` that is really gzipped still reads.  Lines are
  split on '\\n' only (str.splitlines would also split on \\x85 or U+2028 inside item text);
  '\\r' before it is dropped, and so is a UTF-8 BOM at the start (spreadsheet exports add one
  and it would corrupt the first header name).  A bad byte is reported with ITS line number.
  """
  p = require_file(path)
  ln, rest = 1, b""
  first_block = [True]

  def lines_of(buf: bytes):
    nonlocal ln
    try:
      text = buf.decode("utf-8")
    except UnicodeDecodeError as e:
      bad = ln + buf.count(b"\n", 0, e.start)
      line_start = buf.rfind(b"\n", 0, e.start) + 1
      raise DataError(
        p,
        f"invalid UTF-8 at byte {e.start - line_start} of the line "
        f"({buf[max(line_start, e.start - 10) : e.start + 10]!r}); the file must "
        "be UTF-8",
        line=bad,
      ) from None
    if ln == 1 and text.startswith("\ufeff"):
      text = text[1:]
    lines = text.split("\n")
    if text.endswith("\n"):
      lines.pop()
    if "\r" in text:
      lines = [x[:-1] if x.endswith("\r") else x for x in lines]
      if first_block[0] and lines and "\r" in lines[0]:
        raise DataError(
          p,
          "line breaks are carriage returns alone ('\\r', old Mac style); "
          "convert the file to '\\n' line breaks",
          line=ln,
        )
    first_block[0] = False
    first, ln = ln, ln + len(lines)
    return first, lines

  try:
    for data in _chunks(p):
      buf = rest + data
      cut = buf.rfind(b"\n") + 1
      rest = buf[cut:]
      if cut:
        yield lines_of(buf[:cut])
  except _StreamError as e:
    raise DataError(p, f"{e} after line {ln - 1}; re-download the file", line=ln) from None
  except OSError as e:
    raise DataError(p, f"cannot read: {e.strerror or e}") from None
  if rest:
    yield lines_of(rest)


def open_text(path) -> Iterator[tuple[int, str]]:
  """Yield (1-based line number, line without its line break), streaming (see read_blocks)."""
  for first, lines in read_blocks(path):
    yield from enumerate(lines, first)
