"""A codec table resting on few videos says so."""
import logging

from cvision.projects.codec import modes
from experiments.configs import codec as codec_configs


def test_a_table_of_one_video_warns_how_many_it_rests_on(
    tiny_codec_run, data_dir, caplog):
  config = codec_configs.get_config('tiny')
  config.data.data_dir = data_dir
  config.eval.num_videos = 1
  with caplog.at_level(logging.WARNING):
    result = modes.evaluate(config, tiny_codec_run)
  assert result['num_examples'] == 1
  warned = [r.getMessage() for r in caplog.records
            if 'rests on 1' in r.getMessage()]
  assert warned and f'fewer than {modes.FEW_VIDEOS}' in warned[0]
