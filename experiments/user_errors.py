"""Short, readable errors for the binary's users; tracebacks on request.

A wrong flag, a config typo, a missing folder, a file that is not a video, a
run that refuses another model's checkpoint: the user needs the message, not
50 lines of library frames above it. `run(main)` prints one or two lines on
stderr and exits non-zero; `--show_traceback` (or `--verbosity=1`) keeps the
whole traceback for those who want it.
"""
from __future__ import annotations

import ast
import sys
import traceback
from typing import Callable, Sequence

from absl import app
from absl import flags
import jax

from cvision.core import checkpointing
from cvision.core import trainer

_SHOW_TRACEBACK = flags.DEFINE_bool(
    'show_traceback', False, 'On an error, print the whole traceback rather '
    'than its message alone.')

EXIT_USAGE = 2  # A flag, a config field or a preset is wrong.
EXIT_ERROR = 1  # The run refused its input or stopped (message says why).

# Errors whose message is the whole story for the user. Anything else (a bug)
# keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError,
               NotADirectoryError, PermissionError,
               checkpointing.CheckpointMismatchError,
               trainer.NonFiniteLossError)


def _wants_traceback(argv: Sequence[str]) -> bool:
  """Read from argv: flag parsing may be what failed."""
  for arg in argv:
    if arg in ('--show_traceback', '--show_traceback=true', '-v=1'):
      return True
    if arg.startswith('--verbosity=') or arg.startswith('-v='):
      try:
        return int(arg.split('=', 1)[1]) >= 1
      except ValueError:
        return False
  return False


def message(error: BaseException) -> str:
  """The user-facing text of `error`, from the error that caused it.

  ml_collections wraps a config typo's KeyError in an AttributeError whose
  text is the KeyError's repr (`'\\'stepz\\'\\nDid you mean ...'`): unwrap it.
  """
  while isinstance(error, flags.Error) and error.__cause__ is not None:
    error = error.__cause__
  text = str(error)
  for _ in range(2):  # A repr of a repr, at most.
    if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
      try:
        text = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        break
  if 'Traceback (most recent call last)' in text:
    # config_flags pastes the config file's traceback into its message:
    # what the user needs is the flag and the last line (the error).
    head = text.split('Traceback (most recent call last)')[0]
    head = head.replace('Error whilst parsing config file:', '').strip()
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    text = f'{head} {last}'
  if isinstance(error, (KeyError, AttributeError)) and 'Did you mean' in text:
    field, _, hint = text.partition('\n')
    text = f'no config field {field}. {hint}'
  return ' '.join(text.split('\n')).strip()


def _fail(error: BaseException, code: int, argv: Sequence[str]) -> None:
  if _wants_traceback(argv):
    raise error
  name = type(error).__name__
  print(f'error ({name}): {message(error)}', file=sys.stderr)
  print('(--show_traceback for the full traceback)', file=sys.stderr)
  sys.exit(code)


def report_in_process(error: BaseException) -> None:
  """Prints `error` as `_fail` would, for a process that must exit at once.

  In a multi-process run (`distributed.exit_at_once_on_error`) the process
  cannot raise to `run`: the message names the process, and a bug (or
  `--show_traceback`) keeps its traceback.
  """
  where = f'process {jax.process_index()} of {jax.process_count()}'
  if isinstance(error, USER_ERRORS) and not _wants_traceback(sys.argv):
    print(f'error ({type(error).__name__}) in {where}: {message(error)}',
          file=sys.stderr)
    print('(--show_traceback for the full traceback)', file=sys.stderr)
  else:
    print(f'error in {where}:', file=sys.stderr)
    traceback.print_exception(error)


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(e, EXIT_USAGE, argv)
  except Exception as e:  # pylint: disable=broad-except
    # A config file that raises while loading (a bad preset) surfaces here.
    if isinstance(e, USER_ERRORS + (KeyError, AttributeError)):
      _fail(e, EXIT_USAGE, argv)
    raise


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with user errors shown as short messages."""
  argv = list(sys.argv)

  def guarded(args):
    try:
      return main(args)
    except app.UsageError as e:
      _fail(e, EXIT_USAGE, argv)
    except USER_ERRORS as e:
      _fail(e, EXIT_ERROR, argv)

  app.run(guarded, flags_parser=_parse_flags)
