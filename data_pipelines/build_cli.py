r"""Command line for `data_pipelines.build` (flags live here, not in the library,
so importing the builders never defines absl flags that collide with a
binary's own).

  python -m data_pipelines.build_cli --dataset=moving_digits --config=small \
      --data_dir=/data/tfds
  python -m data_pipelines.build_cli --dataset=video_folder --root=/data/ucf101 \
      --num_frames=16 --height=64 --width=64 --data_dir=/data/tfds \
      [--on_decode_error=skip|keep_truncated|fail]

After a video_folder build it prints how many videos were read, skipped,
kept truncated and padded, and which splits were left out.
"""
from collections.abc import Sequence

from absl import app
from absl import flags
from absl import logging

from data_pipelines.build import DATASETS, build_dataset
from data_pipelines.builders import _common
from data_pipelines.builders import video_folder

_DATASET = flags.DEFINE_string(
    'dataset', None, f'Dataset to build, one of: {", ".join(DATASETS)}.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data directory.')
_CONFIG = flags.DEFINE_string(
    'config', 'small',
    'moving_digits config: small, large, tiny, dense, odd_one_out, '
    'odd_translation, count_rotations, long or paper.')
_ROOT = flags.DEFINE_string(
    'root', None, 'video_folder: folder of <class>/ video sub-folders.')
_CONFIG_NAME = flags.DEFINE_string(
    'config_name', None,
    'video_folder: dataset config name; default derived from root+settings.')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', 16, 'video_folder: T.')
_HEIGHT = flags.DEFINE_integer('height', 64, 'video_folder: clip height.')
_WIDTH = flags.DEFINE_integer('width', 64, 'video_folder: clip width.')
_CLIP_STRIDE = flags.DEFINE_integer(
    'clip_stride', None, 'video_folder: frames between clip starts; '
    'default num_frames.')
_FRAME_STEP = flags.DEFINE_integer(
    'frame_step', 1, 'video_folder: keep every n-th decoded frame.')
_MAX_CLIPS = flags.DEFINE_integer(
    'max_clips_per_video', None, 'video_folder: clips kept per video.')
_PAD_SHORT = flags.DEFINE_bool(
    'pad_short_videos', True, 'video_folder: pad a video shorter than one '
    'clip with its last frame; --nopad_short_videos skips it (counted).')
_ON_DECODE_ERROR = flags.DEFINE_enum(
    'on_decode_error', 'skip', video_folder.DECODE_ERROR_POLICIES,
    'video_folder: a file that stops decoding part-way (cut short) is '
    'skipped, kept truncated (the clips before the fault), or fails the '
    'build; counted either way.')
_SPLIT_FRACTIONS = flags.DEFINE_string(
    'split_fractions', 'train=0.8,validation=0.1,test=0.1',
    'video_folder without split folders: split=fraction,... summing to 1.')


def _parse_fractions(text: str) -> tuple[tuple[str, float], ...]:
  pairs = []
  for item in text.split(','):
    split, _, fraction = item.partition('=')
    if not fraction:
      raise app.UsageError(f'--split_fractions: bad item {item!r}.')
    pairs.append((split.strip(), float(fraction)))
  return tuple(pairs)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not _DATASET.value or not _DATA_DIR.value:
    raise app.UsageError('--dataset and --data_dir are required.')
  if _DATASET.value == 'moving_digits':
    kwargs = {'config': _CONFIG.value}
  elif _DATASET.value == 'video_folder':
    if not _ROOT.value:
      raise app.UsageError('--dataset=video_folder needs --root.')
    kwargs = dict(
        root=_ROOT.value, config_name=_CONFIG_NAME.value,
        num_frames=_NUM_FRAMES.value, height=_HEIGHT.value,
        width=_WIDTH.value, clip_stride=_CLIP_STRIDE.value,
        frame_step=_FRAME_STEP.value, max_clips_per_video=_MAX_CLIPS.value,
        pad_short_videos=_PAD_SHORT.value,
        on_decode_error=_ON_DECODE_ERROR.value,
        split_fractions=_parse_fractions(_SPLIT_FRACTIONS.value))
  else:
    raise app.UsageError(
        f'Unknown --dataset={_DATASET.value!r}; choose one of: '
        f'{", ".join(DATASETS)}.')
  builder = build_dataset(_DATASET.value, _DATA_DIR.value, **kwargs)
  splits = ', '.join(f'{name}: {split.num_examples}'
                     for name, split in sorted(builder.info.splits.items()))
  logging.info('Built %s in %s (%s).', builder.info.full_name,
               builder.data_dir, splits)
  print(f'{builder.info.full_name} at {builder.data_dir}: {splits}')
  for line in _common.report_lines(builder.info.metadata or {}):
    print(line)


if __name__ == '__main__':
  app.run(main)
