"""TFDS dataset builders (array_record, no TensorFlow needed).

Importing this package registers `moving_digits` and `video_folder` with
TFDS, so `tfds.data_source('moving_digits/tiny', data_dir=...)` finds them.
"""

from data_pipelines.builders import moving_digits
from data_pipelines.builders import video_folder
