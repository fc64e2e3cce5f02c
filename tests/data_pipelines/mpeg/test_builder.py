"""The mpeg_gops TFDS builder: generated videos and a folder of files."""
import os

import numpy as np

from data_pipelines import video_io
from data_pipelines.builders import mpeg_gops
from data_pipelines.generated import moving_digits as md
from data_pipelines.mpeg import accumulate


def test_tiny_dataset_features(mpeg_data_dir):
  builder = mpeg_gops.build(mpeg_data_dir, 'tiny')
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 16, 'validation': 8, 'test': 8}
  example = builder.as_data_source(split='test')[0]
  assert example['i_frames'].shape == (1, 32, 32, 3)
  assert example['motion_vectors'].dtype == np.float16
  assert example['accumulated_residuals'].shape == (1, 11, 32, 32, 3)
  assert 0 <= example['label'] < 8
  assert builder.info.metadata['gop_size'] == 12


def test_folder_of_videos(tmp_path):
  root = tmp_path / 'videos'
  config = md.MovingDigitsConfig(num_frames=14, height=32, width=32)
  for split in ('train', 'test'):
    for index, label in enumerate(('jump', 'run')):
      folder = root / split / label
      folder.mkdir(parents=True)
      frames = md.generate_example(config, 5, index)['video']
      video_io.write_video(str(folder / 'h264.mp4'), frames)  # Re-encoded.
      video_io.write_video(str(folder / 'mpeg4.avi'), frames, codec='mpeg4',
                           g=12, bf=0, qmin=4, qmax=4, sc_threshold=10**9)
  (root / 'train' / 'run' / 'broken.mp4').write_bytes(b'not a video' * 50)
  video_io.write_video(str(root / 'test' / 'run' / 'short.mp4'),
                       frames[:6])
  builder = mpeg_gops.build(
      tmp_path / 'tfds', mpeg_gops.folder_config(root, num_gops=1, height=32,
                                                 width=32))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      'train': 4, 'test': 4}
  metadata = builder.info.metadata
  assert sorted(s['path'] for s in metadata['skipped_files']) == [
      'test/run/short.mp4', 'train/run/broken.mp4']
  assert metadata['num_videos_reencoded'] == 4  # The H.264 files.
  assert builder.info.features['label'].names == ['jump', 'run']
  example = builder.as_data_source(split='train')[0]
  rebuilt = accumulate.reconstruct_from_i_frame(
      example['i_frames'][0], example['accumulated_motion_vectors'][0],
      example['accumulated_residuals'][0])
  assert rebuilt.min() >= 0 and rebuilt.max() <= 255
  assert os.path.isdir(builder.data_dir)
