"""quiet_library_logs: our progress stays, libraries' chatter goes."""
import logging as std_logging

from cvision.core import metric_logging


def _record(pathname, level, msg):
  return std_logging.LogRecord('absl', level, pathname, 1, msg, None, None)


def test_library_info_and_expected_warnings_dropped_ours_and_errors_kept():
  keep = metric_logging._DropLibraryInfo(('/orbax/',)).filter
  orbax = '/site-packages/orbax/checkpoint/checkpoint_manager.py'
  ours = '/work/cvision/core/train_loop.py'
  assert not keep(_record(orbax, std_logging.INFO, 'Saving checkpoint'))
  assert not keep(_record(orbax, std_logging.WARNING,
                          'Given directory is read only=%s'))
  assert keep(_record(orbax, std_logging.WARNING, 'Checkpoint is corrupt'))
  assert keep(_record(orbax, std_logging.ERROR, 'Given directory is read only'))
  assert keep(_record(ours, std_logging.INFO, 'step 10: loss=1.0'))
  assert keep(_record(ours, std_logging.WARNING, 'Given directory is read only'))
