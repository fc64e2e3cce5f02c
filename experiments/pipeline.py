r"""The main job, end to end: train a codec, keep the codes, learn on them.

  python experiments/pipeline.py --workdir=runs/demo

On the generated moving-digits dataset (16 frames of 64x64, 8 motion
classes), about 20 minutes on a 2-core CPU:
  1. generate the dataset (TFDS, array_record);
  2. train the neural codec (`codec.py:cpu`, `--codec_steps` steps);
  3. compare it with JPEG and MPEG at measured compression rates;
  4. write the dataset as codes, once, and decode a few clips to look at;
  5. train the same small S3D on the codes and on the RGB frames, and
     evaluate both on the test split.
It prints the codec table and, side by side for the two routes, top-1,
bytes on disk per video and train steps per second.

Each stage is a `main.py` mode and resumes or skips what is done: rerunning
after an interruption continues. `--codec_steps=3000 --classifier_steps=1000`
are the settings of docs/results/ (the presets' own); single stages with
other overrides: `main.py`.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import ml_collections

from cvision import projects
from cvision.core import metric_logging
from cvision.projects.codec import modes as codec_modes
from cvision.projects.s3d import modes as s3d_modes
from experiments.configs import codec as codec_configs
from experiments.configs import s3d as s3d_configs

_WORKDIR = flags.DEFINE_string('workdir', None, 'Where every stage writes.')
_CODEC_PRESET = flags.DEFINE_string(
    'codec_preset', 'cpu', 'Preset of experiments/configs/codec.py (tiny: '
    'a seconds-long smoke run, with the s3d tiny preset).')
_CODEC_STEPS = flags.DEFINE_integer(
    'codec_steps', 1500, 'Codec training steps (0: the preset\'s own).')
_CLASSIFIER_STEPS = flags.DEFINE_integer(
    'classifier_steps', 400, 'S3D training steps, the same for both routes '
    '(0: the preset\'s own).')
flags.mark_flag_as_required('workdir')


def _bytes_under(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)


def _steps_per_second(workdir: str) -> float:
  """The last logged training rate (metrics.jsonl), compilation excluded."""
  rate = float('nan')
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      record = json.loads(line)
      if record.get('split') == 'train' and 'steps_per_sec' in record:
        rate = record['steps_per_sec']
  return rate


def _classifier_config(codec_config, presets: str, steps: int
                       ) -> ml_collections.ConfigDict:
  config = s3d_configs.get_config(presets)
  config.data.data_dir = codec_config.data.data_dir
  config.data.builder_kwargs.config = codec_config.data.builder_kwargs.config
  if steps:
    config.train.steps = steps
  return config


def _route_row(name: str, workdir: str, evaluation: dict, dataset_dir: str,
               num_videos: int) -> dict:
  one_clip = evaluation['rows'][0]
  return {'route': name, 'top1': 100 * one_clip['top1'],
          'bytes_per_video': _bytes_under(dataset_dir) / num_videos,
          'steps_per_s': _steps_per_second(workdir)}


def _format_routes(rows: list[dict]) -> str:
  lines = ['| route | top-1 % (1 clip) | bytes on disk / video | train '
           'steps/s |', '|---|---:|---:|---:|']
  for r in rows:
    lines.append(f"| {r['route']} | {r['top1']:.1f} | "
                 f"{r['bytes_per_video']:,.0f} | {r['steps_per_s']:.2f} |")
  rgb, codes = rows
  lines.append(
      f"\nCodes take {rgb['bytes_per_video'] / codes['bytes_per_video']:.0f}x "
      f"fewer bytes than the RGB frames and train "
      f"{codes['steps_per_s'] / rgb['steps_per_s']:.1f}x the steps/s.")
  return '\n'.join(lines)


def main(argv):
  del argv
  metric_logging.quiet_library_logs()
  workdir = os.path.abspath(_WORKDIR.value)
  codec_config = codec_configs.get_config(_CODEC_PRESET.value)
  if _CODEC_STEPS.value and _CODEC_PRESET.value != 'tiny':
    codec_config.train.steps = _CODEC_STEPS.value
  codec_config.data.data_dir = os.path.join(workdir, 'datasets')
  codec_dir = os.path.join(workdir, 'codec')

  logging.info('[1-2/5] Dataset and codec training (%s).', codec_dir)
  projects.train(codec_config, codec_dir)
  logging.info('[3/5] Codec against JPEG and MPEG.')
  codec_table = codec_modes.evaluate(codec_config, codec_dir)
  logging.info('[4/5] Writing the dataset as codes; decoding a few clips.')
  encoded = codec_modes.encode(codec_config, codec_dir)
  decoded = codec_modes.decode(codec_config, codec_dir)

  logging.info('[5/5] The same S3D on RGB frames and on the codes.')
  tiny = ',tiny' if _CODEC_PRESET.value == 'tiny' else ''
  steps = 0 if tiny else _CLASSIFIER_STEPS.value
  rgb = _classifier_config(codec_config, 'rgb' + tiny, steps)
  codes = _classifier_config(codec_config, 'codes' + tiny, steps)
  codes.codec.workdir = codec_dir
  codes.data.dataset_dir = encoded['output_dir']
  rows = []
  for name, config in (('RGB frames', rgb), ('neural codes', codes)):
    run_dir = os.path.join(workdir, 's3d_' + config.input)
    projects.train(config, run_dir)
    evaluation = s3d_modes.evaluate_clips(config, run_dir)
    source_dir = (config.data.dataset_dir if config.input == 'codes' else
                  os.path.join(config.data.data_dir, 'moving_digits',
                               config.data.builder_kwargs.config))
    rows.append(_route_row(name, run_dir, evaluation, source_dir,
                           encoded['num_videos']))

  print('\nThe codec against JPEG and MPEG (test videos):\n')
  print(codec_table['table'])
  print(f"\nCodes: {encoded['output_dir']} ({encoded['code_bytes_on_disk']} "
        f"bytes on disk for {encoded['raw_video_bytes']} bytes of raw video, "
        f"{encoded['measured_storage_ratio']:.1f}x)")
  print(f"Decoded frames: {decoded['grid']}")
  print(f'\nThe same S3D on RGB and on codes ({rgb.train.steps} steps each, '
        'test split):\n')
  print(_format_routes(rows))


if __name__ == '__main__':
  app.run(main)
