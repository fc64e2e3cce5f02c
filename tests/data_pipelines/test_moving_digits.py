"""Tests for the Moving Digits generator."""

import dataclasses

import numpy as np
import pytest
from sklearn import linear_model
from sklearn import pipeline
from sklearn import preprocessing

from data_pipelines.generated import moving_digits as md

TINY = md.MovingDigitsConfig(num_frames=8, height=32, width=32)


def test_example_shapes_and_labels():
  ex = md.generate_example(md.DEFAULT, seed=0, index=0)
  assert ex['video'].shape == (16, 64, 64, 3)
  assert ex['video'].dtype == np.uint8
  assert ex['frame_labels'].shape == (16,)
  assert ex['frame_labels'].dtype == np.int32
  assert 0 <= ex['label'] < 8
  assert (ex['frame_labels'] == ex['label']).all()
  assert len(md.DEFAULT.class_names) == 8


def test_deterministic_in_config_seed_and_index():
  a = md.generate_example(TINY, seed=3, index=7)
  b = md.generate_example(TINY, seed=3, index=7)
  assert a['video'].tobytes() == b['video'].tobytes()
  assert a['label'] == b['label']
  np.testing.assert_array_equal(a['frame_labels'], b['frame_labels'])
  other_index = md.generate_example(TINY, seed=3, index=8)
  other_seed = md.generate_example(TINY, seed=4, index=7)
  assert a['video'].tobytes() != other_index['video'].tobytes()
  assert a['video'].tobytes() != other_seed['video'].tobytes()


def test_all_classes_occur_and_frames_move():
  examples = [md.generate_example(TINY, 0, i) for i in range(120)]
  labels = np.array([e['label'] for e in examples])
  assert set(labels) == set(range(8))
  # Every class changes the picture between consecutive frames.
  for c in range(8):
    video = next(e['video'] for e in examples if e['label'] == c)
    diffs = np.abs(np.diff(video.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (diffs > 0.5).all(), (md.CLASS_NAMES[c], diffs)


def _down(videos, factor):
  """Mean-pools `[..., H, W, C]` by `factor`."""
  *lead, h, w, c = videos.shape
  return videos.reshape(*lead, h // factor, factor, w // factor, factor,
                        c).mean(axis=(-4, -2))


def _phase_correlation(videos):
  """Translation-invariant two-frame motion features, `[N, H/2 * W/2]`.

  The phase correlation of consecutive grey frames peaks at their relative
  shift wherever the digit is; averaged over the frame pairs of a clip.
  """
  grey = _down(videos, 2).mean(-1)
  spectra = np.fft.fft2(grey)
  cross = spectra[:, 1:] * np.conj(spectra[:, :-1])
  cross /= np.abs(cross) + 1e-3
  corr = np.fft.ifft2(cross).real.mean(axis=1)
  return np.fft.fftshift(corr, axes=(1, 2)).reshape(len(videos), -1)


def _logistic_accuracy(x_train, y_train, x_test, y_test):
  model = pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(max_iter=200, C=0.1))
  model.fit(x_train, y_train)
  return model.score(x_test, y_test)


def test_labels_need_motion():
  """One frame is at chance; two frames give the class far above chance."""

  def data(seed, n):
    examples = [md.generate_example(TINY, seed, i) for i in range(n)]
    videos = np.stack([e['video'] for e in examples]).astype(np.float32) / 255
    return videos, np.array([e['label'] for e in examples])

  train_videos, y_train = data(seed=0, n=400)
  test_videos, y_test = data(seed=1, n=200)
  chance = np.bincount(y_test).max() / len(y_test)

  def single_frame(videos):  # Middle frame, 4x downsampled, flattened.
    return _down(videos[:, TINY.num_frames // 2], 4).reshape(len(videos), -1)

  single = _logistic_accuracy(single_frame(train_videos), y_train,
                              single_frame(test_videos), y_test)
  motion = _logistic_accuracy(_phase_correlation(train_videos), y_train,
                              _phase_correlation(test_videos), y_test)
  assert single < chance + 0.1, (single, chance)
  assert motion > 0.45, (motion, chance)


def test_dense_variant_labels_change_between_segments():
  config = md.MovingDigitsConfig(num_frames=24, height=32, width=32,
                                 segments_per_video=4, min_segment_frames=3)
  for index in range(10):
    ex = md.generate_example(config, seed=0, index=index)
    labels = ex['frame_labels']
    assert labels.shape == (24,)
    change = np.flatnonzero(np.diff(labels)) + 1
    assert len(change) == 3  # 4 segments, each differs from the previous.
    lengths = np.diff(np.r_[0, change, 24])
    assert (lengths >= 3).all()
    counts = np.bincount(labels, minlength=8)
    assert ex['label'] == int(np.argmax(counts))  # Majority, ties: lowest.


def test_odd_one_out_label_is_the_motion_of_the_single_odd_segment():
  config = md.MovingDigitsConfig(num_frames=24, height=32, width=32,
                                 segments_per_video=4,
                                 label_rule='odd_one_out')
  positions = set()
  for index in range(30):
    ex = md.generate_example(config, seed=0, index=index)
    segments = ex['frame_labels'].reshape(4, 6)
    assert (segments == segments[:, :1]).all()  # Equal, one class each.
    classes = list(segments[:, 0])
    odd = [i for i, c in enumerate(classes) if classes.count(c) == 1]
    assert len(odd) == 1 and len(set(classes)) == 2
    assert ex['label'] == classes[odd[0]]
    positions.add(odd[0])
  # The odd segment is anywhere, so position does not give it away.
  assert positions == {0, 1, 2, 3}
  # The majority rule on the same config would give the common class.
  assert md.ODD_ONE_OUT.label_rule == 'odd_one_out'


def test_odd_translation_uses_only_the_four_translations():
  config = dataclasses.replace(md.ODD_TRANSLATION, height=32, width=32)
  pairs = set()
  for index in range(120):
    ex = md.generate_example(config, seed=0, index=index)
    classes = list(ex['frame_labels'].reshape(4, 8)[:, 0])
    common = max(set(classes), key=classes.count)
    assert classes.count(common) == 3 and ex['label'] != common
    assert ex['label'] in classes
    pairs.add((int(common), int(ex['label'])))
  # Every ordered pair of distinct translations occurs, none other.
  assert pairs == {(a, b) for a in range(4) for b in range(4) if a != b}


def test_count_rotations_label_counts_the_rotating_segments():
  config = dataclasses.replace(md.COUNT_ROTATIONS, height=32, width=32)
  counts = []
  for index in range(160):
    ex = md.generate_example(config, seed=0, index=index)
    segments = ex['frame_labels'].reshape(4, 8)
    assert (segments == segments[:, :1]).all()  # Equal, one class each.
    classes = segments[:, 0]
    # Rotations (4, 5) or translations (0-3), never grow or shrink.
    assert set(classes) <= {0, 1, 2, 3, 4, 5}
    assert ex['label'] == np.isin(classes, [4, 5]).sum()
    counts.append(ex['label'])
  # Each segment rotates with probability 1/2: binomial 1:4:6:4:1 over 160.
  hist = np.bincount(counts, minlength=5)
  assert hist.sum() == 160 and (hist > 0).all()
  assert hist[2] > hist[0] + hist[4]
  assert config.label_names == tuple(f'{k}_rotating' for k in range(5))
  # Frame labels keep naming motions.
  assert config.class_names == md.CLASS_NAMES


def test_long_stream_is_chunk_size_independent():
  config = md.MovingDigitsConfig(
      height=32, width=32, min_segment_frames=4, max_segment_frames=9)
  chunks = list(md.generate_long_video_chunks(config, seed=5, num_frames=50,
                                              chunk_frames=7))
  assert [len(c['video']) for c in chunks] == [7] * 7 + [1]
  assert all(c['video'].shape[1:] == (32, 32, 3) for c in chunks)
  video = np.concatenate([c['video'] for c in chunks])
  labels = np.concatenate([c['frame_labels'] for c in chunks])
  other = list(md.generate_long_video_chunks(config, seed=5, num_frames=50,
                                             chunk_frames=16))
  assert video.tobytes() == np.concatenate(
      [c['video'] for c in other]).tobytes()
  np.testing.assert_array_equal(
      labels, np.concatenate([c['frame_labels'] for c in other]))
  runs = np.diff(np.r_[0, np.flatnonzero(np.diff(labels)) + 1, 50])
  assert len(runs) >= 50 // 9 and (runs[:-1] >= 4).all()
  assert (runs <= 9).all()
  assert len(set(labels)) > 2


def test_long_config_has_many_segments():
  ex = md.generate_example(
      md.MovingDigitsConfig(num_frames=64, height=16, width=16,
                            segments_per_video=8, min_segment_frames=4),
      seed=0, index=0)
  assert len(np.flatnonzero(np.diff(ex['frame_labels']))) == 7
  assert md.LONG.num_frames >= 256 and md.LONG.segments_per_video >= 8


@pytest.mark.parametrize('kwargs', [
    {'num_classes': 9}, {'num_classes': 1},
    {'segments_per_video': 5, 'num_frames': 8, 'min_segment_frames': 2},
    {'digit_size': 0.6},
    {'label_rule': 'minority'},
    # odd_one_out: segments must be equal and at least 3.
    {'label_rule': 'odd_one_out', 'num_frames': 30, 'segments_per_video': 4,
     'min_segment_frames': 2},
    {'label_rule': 'odd_one_out', 'num_frames': 8, 'segments_per_video': 2},
    # count_rotations: needs the rotations, and equal segments.
    {'label_rule': 'count_rotations', 'num_frames': 32,
     'segments_per_video': 4, 'num_classes': 4},
    {'label_rule': 'count_rotations', 'num_frames': 30,
     'segments_per_video': 4},
])
def test_invalid_configs(kwargs):
  with pytest.raises(ValueError):
    md.MovingDigitsConfig(**kwargs)


def test_fewer_classes():
  config = md.MovingDigitsConfig(num_frames=4, height=16, width=16,
                                 num_classes=4)
  labels = {md.generate_example(config, 0, i)['label'] for i in range(40)}
  assert labels == {0, 1, 2, 3}
  assert config.class_names == md.CLASS_NAMES[:4]
