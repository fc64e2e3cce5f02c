r"""Command line: build the `mpeg_gops` dataset, or extract one video.

  python -m data_pipelines.mpeg.build_cli --config=small --data_dir=/data/tfds
  python -m data_pipelines.mpeg.build_cli --root=/data/ucf101 --num_gops=2 \
      --size=64,64 --data_dir=/data/tfds
  python -m data_pipelines.mpeg.build_cli --video=clip.mp4 [--size=64,64]

The first builds `mpeg_gops/<config>` (moving digits encoded to MPEG-4 part
2, GOP 12; see `data_pipelines/builders/mpeg_gops.py`); the second the same
features from a folder of your videos (`root/<class>/*.mp4`); train on it
with `--config.data.name=folder --config.data.dataset_dir=<printed dir>`.
The third reads one file as GOPs, re-encoding it when it is not MPEG-4 part
2 with GOPs of 12 and no B-frames (`--no_reencode` refuses it instead), and
prints what it found. `--on_decode_error=skip|keep_truncated|fail` decides
what a file that stops decoding part-way does (`--root`: to the build;
`--video`: keep_truncated keeps its complete GOPs, otherwise it is an
error); see docs/reliability.md.
"""
from collections.abc import Sequence
import sys

from absl import app
from absl import flags
import numpy as np

_CONFIG = flags.DEFINE_string('config', 'small', 'mpeg_gops config: small or '
                              'tiny.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data directory.')
_ROOT = flags.DEFINE_string('root', None, 'Build from this folder of videos.')
_NUM_GOPS = flags.DEFINE_integer('num_gops', 2, '--root: GOPs per video.')
_VIDEO = flags.DEFINE_string('video', None, 'Extract this file instead.')
_SIZE = flags.DEFINE_list('size', None, 'height,width to resize to (--root: '
                          'default 64,64).')
_NO_REENCODE = flags.DEFINE_bool('no_reencode', False, 'Refuse a --video '
                                 'that would need re-encoding.')
# The choices of video_folder.DECODE_ERROR_POLICIES, written out so that
# --video runs without importing TFDS.
_ON_DECODE_ERROR = flags.DEFINE_enum(
    'on_decode_error', 'skip', ('skip', 'keep_truncated', 'fail'),
    'A file that stops decoding part-way (cut short): skipped, kept '
    'truncated (its complete GOPs) or fails the build; counted either way.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _VIDEO.value:
    # pylint: disable=g-import-not-at-top
    from data_pipelines.mpeg import extract
    from data_pipelines.mpeg.errors import ReencodeRefusedError
    # pylint: enable=g-import-not-at-top
    size = tuple(int(s) for s in _SIZE.value) if _SIZE.value else None
    try:
      gops = extract.extract_gops(
          _VIDEO.value, size=size, allow_reencode=not _NO_REENCODE.value,
          keep_truncated=_ON_DECODE_ERROR.value == 'keep_truncated')
    except ReencodeRefusedError as e:
      sys.exit(f'{e.source}: {e.problem}; --no_reencode refuses to '
               're-encode it (without the flag it is re-encoded to MPEG-4 '
               'part 2, GOP 12, no B-frames).')
    if gops.truncated:
      print(f'truncated: {gops.truncated}')
    print(f'{gops.source}: {gops.codec}, {gops.num_frames} frames -> '
          f'{gops.num_gops} GOPs ({gops.dropped_frames} trailing frames '
          'dropped)')
    print('re-encoded: ' + (gops.reencode_reason if gops.reencoded else 'no'))
    for name in ('i_frames', 'motion_vectors', 'residuals',
                 'accumulated_motion_vectors', 'accumulated_residuals'):
      value = getattr(gops, name)
      print(f'  {name}: {value.shape} {value.dtype}, mean |x| '
            f'{np.abs(value.astype(np.float32)).mean():.2f}')
    return
  if not _DATA_DIR.value:
    raise app.UsageError('--data_dir is required (or --video).')
  # pylint: disable=g-import-not-at-top
  from data_pipelines.builders import _common
  from data_pipelines.builders import mpeg_gops
  # pylint: enable=g-import-not-at-top
  config = _CONFIG.value
  if _ROOT.value:
    height, width = (int(s) for s in (_SIZE.value or (64, 64)))
    config = mpeg_gops.folder_config(
        _ROOT.value, num_gops=_NUM_GOPS.value, height=height, width=width,
        on_decode_error=_ON_DECODE_ERROR.value)
  builder = mpeg_gops.build(_DATA_DIR.value, config)
  splits = ', '.join(f'{name}: {split.num_examples}'
                     for name, split in sorted(builder.info.splits.items()))
  print(f'{builder.info.full_name} at {builder.data_dir}: {splits}')
  metadata = builder.info.metadata or {}
  for line in _common.report_lines(metadata):
    print(line)
  if 'num_videos_reencoded' in metadata:
    print(f"{metadata['num_videos_reencoded']} re-encoded "
          f"({metadata['reencode_reasons']}).")


if __name__ == '__main__':
  app.run(main)
