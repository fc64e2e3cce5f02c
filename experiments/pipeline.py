r"""The main job, end to end: the compressed pipeline on a generated dataset.

  python experiments/pipeline.py --workdir=runs/demo [--codec_preset=cpu]

Stages (each is also a `main.py` mode, and each resumes or skips what is
done, so rerunning after an interruption continues):
  1. generate the moving-digits dataset (TFDS, array_record);
  2. train the neural codec (`codec.py:PRESET`, --mode=train);
  3. evaluate it against JPEG and MPEG at measured compression rates
     (--mode=eval: Table 1 and a rate-distortion plot);
  4. write the dataset as codes, once (--mode=encode);
  5. decode a few clips back to frames to look at (--mode=decode).
Extra `--config.X=Y` style overrides are not taken here; use main.py for
single stages with overrides.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from cvision.projects.codec import modes as codec_modes
from cvision.core import metric_logging
from cvision import projects
from experiments.configs import codec as codec_config

_WORKDIR = flags.DEFINE_string('workdir', None, 'Where every stage writes.')
_CODEC_PRESET = flags.DEFINE_string(
    'codec_preset', 'cpu', 'Preset of experiments/configs/codec.py.')
_CODEC_STEPS = flags.DEFINE_integer(
    'codec_steps', None, 'Override the preset\'s codec training steps.')
flags.mark_flag_as_required('workdir')


def main(argv):
  del argv
  metric_logging.quiet_library_logs()
  workdir = os.path.abspath(_WORKDIR.value)
  config = codec_config.get_config(_CODEC_PRESET.value)
  if _CODEC_STEPS.value:
    config.train.steps = _CODEC_STEPS.value
  config.data.data_dir = os.path.join(workdir, 'datasets')
  codec_dir = os.path.join(workdir, 'codec')

  logging.info('[1-2/5] Dataset and codec training (%s).', codec_dir)
  projects.train(config, codec_dir)
  logging.info('[3/5] Codec against JPEG and MPEG.')
  evaluation = codec_modes.evaluate(config, codec_dir)
  logging.info('[4/5] Writing the dataset as codes.')
  encoded = codec_modes.encode(config, codec_dir)
  logging.info('[5/5] Decoding a few clips.')
  decoded = codec_modes.decode(config, codec_dir)
  print('\n' + evaluation['table'])
  print(f"\nCodes: {encoded['output_dir']} ({encoded['code_bytes_on_disk']} "
        f"bytes on disk for {encoded['raw_video_bytes']} bytes of raw video, "
        f"{encoded['measured_storage_ratio']:.1f}x)")
  print(f"Decoded frames: {decoded['grid']}")


if __name__ == '__main__':
  app.run(main)
