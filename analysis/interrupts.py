"""How a command-line process of this project stops: Ctrl-C / SIGTERM and errors
of the environment (a full disk), always as one line, never a traceback.

Every entry point installs this before its heavy imports: the packages'
`__init__` do it when Python runs one of their modules with `-m`
(`python -m bench.run`, `analysis.report`, `paper_figures.shallue_fig1`,
`scripts.demo`). From then on:

- SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt) in the main
  thread at its next Python instruction, except inside `shielded()` sections
  (an atomic write and its bookkeeping), where it is raised as the section
  ends, and during an import, where the process stops at once (an exception
  raised into a C extension's initialisation can crash the interpreter later). The signal is also recorded: one raised where Python ignores
  exceptions (a callback called from C, such as XLA's gc callback, or a
  finaliser) is raised again moments later, and `check()` raises it at the
  next safe point (an evaluation, a record).
- A watchdog thread, woken by the signal itself (`signal.set_wakeup_fd`, so
  also while the main thread is inside a long C call: an XLA compilation, a
  dispatch), ends the process GRACE_SEC after the signal if it is still
  running, with the same line and exit status.
- An uncaught `Interrupted` prints the entry point's one line (`on_stop`) and
  the process exits with 128 + the signal's number (130 for SIGINT, 143 for
  SIGTERM); an uncaught OSError prints `error: <path>: <cause>` and exits 1.
  Before the line is printed, everything else is silenced (file descriptor 2
  goes to /dev/null, background threads' exceptions and logging are
  dropped), so it is the last line printed.

Nothing is left half-written by any of these exits: the results store writes
every file atomically (temp + rename) and a checkpoint is named by its
state.json only once complete, so stopping at any instant is like SIGKILL,
which the store is built to survive; the same command resumes.

Standard library only: bench, analysis and paper_figures all import it.
"""
from __future__ import annotations

import atexit
import contextlib
import errno as errno_lib
import os
import re
import select
import signal
import sys
import tempfile
import threading
import time
from typing import Callable

GRACE_SEC = 3.0           # the most a process takes to stop after a signal
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ARM = 255                # the byte finish() writes to start the watchdog's clock


class Interrupted(KeyboardInterrupt):
  """SIGINT (Ctrl-C) or SIGTERM: stop now, record nothing partial, exit
  128 + the signal's number."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum
    self.name = signal.Signals(signum).name
    self.code = 128 + signum


class _State:
  installed = False
  signum: int | None = None      # the first signal received
  shield = 0                     # depth of shielded() sections
  swallowed = False              # an Interrupted died in a callback: raise it again
  stopping = False               # on the way out: no more raising
  exit_code: int | None = None   # set once the one line is printed
  err_fd: int | None = None      # the real stderr, kept when fd 2 is silenced
  silenced = False
  extra_sec = 0.0                # more time the watchdog gives (extend())
  wake_w: int | None = None
  main_ident: int | None = None
  message: Callable[[Interrupted], str] | None = None
  error_note = ""                # said after an uncaught OSError's line


_s = _State()


# ----------------------------------------------------------------- installing

def install() -> None:
  """Take over SIGINT / SIGTERM, uncaught exceptions and the exit status for
  this process (idempotent; main thread only)."""
  if _s.installed or threading.current_thread() is not threading.main_thread():
    return
  _s.installed = True
  _s.main_ident = threading.get_ident()
  _s.err_fd = os.dup(2)
  os.set_inheritable(_s.err_fd, False)
  r, w = os.pipe()
  os.set_blocking(w, False)
  _s.wake_w = w
  for sig in SIGNALS:
    signal.signal(sig, _on_signal)
  try:
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
  except (ValueError, OSError):
    pass  # _on_signal also wakes the watchdog
  threading.Thread(target=_watchdog, args=(r,), name="optbench-interrupts",
                   daemon=True).start()
  sys.excepthook = _excepthook
  sys.unraisablehook = _make_unraisablehook(sys.unraisablehook)
  atexit.register(_at_exit)  # registered first, so it runs last
  os.register_at_fork(after_in_child=_forked)


def _forked() -> None:
  """A forked child has no watchdog and must not wake its parent's."""
  _s.wake_w = None
  try:
    signal.set_wakeup_fd(-1)
  except (ValueError, OSError):
    pass


def on_stop(message: Callable[[Interrupted], str]) -> None:
  """The entry point's line for a signal (default: '<SIGNAL>: stopped ...')."""
  _s.message = message


def on_error(note: str) -> None:
  """What to add to the line of an uncaught error of the environment, e.g.
  '; rerun the same command once there is room: finished trials are kept'."""
  _s.error_note = note


def _on_signal(signum: int, frame) -> None:
  if _s.signum is None:
    _s.signum = signum
  _wake(signum)
  if _s.stopping:
    return
  if _s.shield:
    return  # raised when the section ends
  if _importing(frame):
    # An exception raised into a module being imported can leave a C extension
    # half-initialised (jaxlib then crashed the process at exit): stop right
    # here instead, which is safe, since nothing is half-written then but
    # what the store's atomic writes make harmless, as after SIGKILL.
    _print_last(_stop_line(_s.signum), 128 + _s.signum)
    _flush_stdout()
    os._exit(128 + _s.signum)
  raise Interrupted(_s.signum)


def _importing(frame) -> bool:
  """Whether the main thread is executing an import (a module's top level)."""
  while frame is not None:
    if frame.f_code.co_filename.startswith("<frozen importlib"):
      return True
    frame = frame.f_back
  return False


def _wake(byte: int) -> None:
  if _s.wake_w is not None:
    try:
      os.write(_s.wake_w, bytes([byte]))
    except OSError:
      pass


def _make_unraisablehook(default):
  def hook(unraisable):
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _s.signum is not None:
      if not threading.main_thread().is_alive():  # raised in the interpreter's shutdown
        _print_last(_stop_line(_s.signum), 128 + _s.signum)
        _flush_stdout()
        os._exit(128 + _s.signum)
      _s.swallowed = True  # the watchdog raises it again in the main thread
      return
    if _s.silenced:
      return
    default(unraisable)
  return hook


# ------------------------------------------------------------ in the program

def pending() -> int | None:
  """The signal received, if any (None when none, or when not installed)."""
  return _s.signum


def check() -> None:
  """A safe point: raise the recorded signal's Interrupted, if any."""
  if _s.signum is not None and not _s.stopping and not _s.shield:
    raise Interrupted(_s.signum)


@contextlib.contextmanager
def shielded():
  """A section that a signal does not cut (an atomic write and its
  bookkeeping): a signal received inside is raised when it ends normally."""
  _s.shield += 1
  try:
    yield
  finally:
    _s.shield -= 1
  check()


def extend(seconds: float) -> None:
  """Give the stopping process `seconds` more before the watchdog ends it
  (e.g. to wait for worker processes that stop on their own)."""
  _s.extra_sec = max(_s.extra_sec, seconds)


def stopping() -> None:
  """The process is on its way out after a signal (forwarding it to workers,
  waiting for them): further signals are recorded, never raised."""
  _s.stopping = True


def stop(e: Interrupted) -> None:
  """Print the entry point's line for `e` and exit with e.code."""
  finish(_stop_line(e.signum), e.code)


def finish(line: str, code: int) -> None:
  """Silence everything else, print `line` (the last line printed) and exit
  with `code`, running the exit handlers (a local Ray cluster's shutdown)
  silently; the watchdog ends the process if they hang."""
  _print_last(line, code)
  sys.exit(code)


def _stop_line(signum: int) -> str:
  e = Interrupted(signum)
  if _s.message is not None:
    try:
      return _s.message(e)
    except Exception:  # noqa: BLE001 - the line must still be printed
      pass
  return (f"{e.name}: stopped; nothing was left half-written (run the same command again "
          "to redo what was interrupted)")


def _print_last(line: str, code: int) -> None:
  _s.stopping = True
  if _s.exit_code is not None:
    return  # printed already
  _s.exit_code = code
  silence()
  fd = _s.err_fd if _s.err_fd is not None else 2
  try:
    os.write(fd, (line.rstrip("\n") + "\n").encode(errors="replace"))
  except OSError:
    pass
  _wake(_ARM)


def silence() -> None:
  """From now on nothing but the one line prints: library threads, logging,
  the interpreter's shutdown. Only in an installed process."""
  if not _s.installed or _s.silenced:
    return
  _s.silenced = True
  for f in (sys.stdout, sys.stderr):
    try:
      f.flush()
    except Exception:  # noqa: BLE001
      pass
  try:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
  except OSError:
    pass
  threading.excepthook = lambda args: None
  import logging  # pylint: disable=g-import-not-at-top
  logging.disable(logging.CRITICAL)


@contextlib.contextmanager
def library_output_held():
  """Hold what libraries print to stderr (their threads included) while inside:
  shown when the section ends normally, dropped (and everything silenced)
  when it raises, since the one line then says what happened. Only in an
  installed process; elsewhere it does nothing."""
  if not _s.installed or _s.silenced:
    yield
    return
  try:
    sys.stderr.flush()
  except Exception:  # noqa: BLE001
    pass
  saved = os.dup(2)
  try:
    held = tempfile.TemporaryFile()
  except OSError:  # no room for it either
    held = open(os.devnull, "w+b")  # pylint: disable=consider-using-with
  os.dup2(held.fileno(), 2)
  ok = False
  try:
    yield
    ok = True
  finally:
    try:
      sys.stderr.flush()
    except Exception:  # noqa: BLE001
      pass
    os.dup2(saved, 2)
    os.close(saved)
    if ok:
      try:
        held.seek(0)
        text = held.read()
        if text:
          os.write(2, text)
      except OSError:
        pass
    else:
      silence()
    held.close()


# ------------------------------------------------------------ how it ends

def _excepthook(tp, value, tb) -> None:
  if isinstance(value, KeyboardInterrupt) or _s.signum is not None:
    # After a signal, any error is the signal's doing: a library turned it into
    # its own (a C extension's import: "ImportError: initialization failed").
    signum = value.signum if isinstance(value, Interrupted) else (_s.signum or signal.SIGINT)
    _print_last(_stop_line(signum), 128 + signum)
    return
  if isinstance(value, OSError):
    _print_last(f"error: {describe(value)}{_s.error_note}", 1)
    return
  if _s.silenced:
    return
  sys.__excepthook__(tp, value, tb)


def _at_exit() -> None:
  """Last exit handler: the status this module chose (Python would say 1 for
  an uncaught exception), and no output from the interpreter's teardown. After
  a normal end, a signal that came after the program's last line still stops
  it (one line, 128 + N); one that comes later, in the teardown, gets the
  signal's default action (killed by it: no output, a shell shows 128 + N)."""
  if _s.exit_code is None:
    _s.stopping = True  # the handler records, never raises, from here on
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    for _ in range(3):  # back-edges: Python runs the handler of one that came before
      pass
    if _s.signum is not None:
      _print_last(_stop_line(_s.signum), 128 + _s.signum)
    else:
      for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
      signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # one meanwhile: its default action
  if _s.exit_code is not None:
    _flush_stdout()
    os._exit(_s.exit_code)


def _flush_stdout() -> None:
  try:
    sys.stdout.flush()
  except Exception:  # noqa: BLE001
    pass


def _watchdog(r: int) -> None:
  """Woken by every signal (its number, written by Python's C-level handler
  even while the main thread is busy in C) and by _print_last (_ARM)."""
  started, first = None, None
  while True:
    timeout = None if started is None else 0.1
    try:
      ready, _, _ = select.select([r], [], [], timeout)
      data = os.read(r, 512) if ready else b""
    except OSError:
      return
    for b in data:
      if b in SIGNALS and first is None:
        first = b
      if (b in SIGNALS or b == _ARM) and started is None:
        started = time.monotonic()
    if started is None:
      continue
    if _s.swallowed and not _s.stopping and _s.signum is not None:
      _s.swallowed = False  # raised in a callback and ignored there: raise it again
      try:
        signal.pthread_kill(_s.main_ident, _s.signum)
      except (OSError, ValueError):
        pass
    if time.monotonic() - started > GRACE_SEC + _s.extra_sec:
      if _s.exit_code is None:  # the main thread never got to it (a long C call)
        signum = _s.signum or first or signal.SIGTERM
        _print_last(_stop_line(signum), 128 + signum)
      _flush_stdout()
      os._exit(_s.exit_code if _s.exit_code is not None else 1)


# ------------------------------------------------------------ what the OS said

# Errors of storage as the OS names them (os.strerror), found in any library's message.
STORAGE_ERRNOS = (errno_lib.ENOSPC, errno_lib.EDQUOT, errno_lib.EROFS, errno_lib.EACCES,
                  errno_lib.EPERM, errno_lib.EIO, errno_lib.ESTALE, errno_lib.ENOTCONN,
                  errno_lib.EFBIG, errno_lib.ENOENT, errno_lib.ENOTDIR, errno_lib.EISDIR)
_CODE = re.compile(r"(?:os_error_code='?|\[Errno |OS error |errno[ =:]+)(\d+)")
_QUOTED_PATH = re.compile(r"[\"'](/[^\"']+)[\"']")


def os_cause(e: BaseException) -> tuple[int | None, str | None, str | None]:
  """(errno, the OS's words for it, path) behind an exception from any library:
  an OSError in its chain, or the error code or words in its message (orbax and
  tensorstore report a full disk as a ValueError 'RESOURCE_EXHAUSTED: ...
  No space left on device [os_error_code='28']'). (None, None, None) if none."""
  seen, chain = set(), [e]
  while chain:
    x = chain.pop(0)
    if x is None or id(x) in seen:
      continue
    seen.add(id(x))
    if isinstance(x, OSError) and x.errno:
      return x.errno, x.strerror or os.strerror(x.errno), x.filename
    chain += [x.__cause__, x.__context__]
  text = "\n".join(str(x) for x in _chain(e))
  code = None
  for m in _CODE.finditer(text):
    if int(m.group(1)) in STORAGE_ERRNOS:
      code = int(m.group(1))
      break
  if code is None:
    found = [(text.find(os.strerror(n)), n) for n in STORAGE_ERRNOS if os.strerror(n) in text]
    code = min(found)[1] if found else None
  if code is None:
    return None, None, None
  paths = _QUOTED_PATH.findall(text)
  return code, os.strerror(code), paths[-1] if paths else None


def _chain(e: BaseException) -> list[BaseException]:
  out, x = [], e
  while x is not None and x not in out:
    out.append(x)
    x = x.__cause__ or x.__context__
  return out


def describe(e: BaseException) -> str:
  """'<path>: <cause>' for an error of the environment, in the OS's words."""
  code, words, path = os_cause(e)
  path = getattr(e, "filename", None) or path
  words = getattr(e, "strerror", None) or words or (str(e).splitlines() or [type(e).__name__])[0]
  doing = getattr(e, "doing", None)
  return f"{path + ': ' if path else ''}{words}{f' ({doing})' if doing else ''}"
