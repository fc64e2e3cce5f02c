"""JPEG / MPEG baselines: measured rates are real bytes and follow quality."""
import fractions
import io

import av
import numpy as np
from PIL import Image
import pytest

from cvision.projects.codec import baselines


def _video(t=6, h=32, w=32):
  """Smooth moving colour gradients with a bright square, uint8."""
  tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w),
                           indexing='ij')
  video = np.stack([128 + 60 * np.sin((xx + 2 * tt) / 5.0),
                    128 + 50 * np.cos(yy / 4.0),
                    128 + 40 * np.sin((xx + yy) / 7.0)], -1)
  video = video.astype(np.uint8)
  for i in range(t):
    video[i, 8:16, 4 + 2 * i:12 + 2 * i] = (250, 40, 40)
  return video


def test_jpeg_rate_is_raw_over_file_bytes_and_grows_as_quality_drops():
  video = _video()
  rates = []
  for quality in (90, 50, 10):
    recon, rate = baselines.jpeg_roundtrip(video, quality)
    assert recon.shape == video.shape and recon.dtype == np.uint8
    encoded = 0
    for frame in video:
      buffer = io.BytesIO()
      Image.fromarray(frame).save(buffer, format='JPEG', quality=quality)
      encoded += len(buffer.getvalue())
    assert rate == pytest.approx(video.nbytes / encoded)
    rates.append(rate)
  assert rates[0] < rates[1] < rates[2]


def test_jpeg_shared_tables_counts_fewer_bytes_same_pixels():
  video = _video()
  recon, rate = baselines.jpeg_roundtrip(video, 50)
  recon_shared, rate_shared = baselines.jpeg_roundtrip(video, 50,
                                                       shared_tables=True)
  np.testing.assert_array_equal(recon, recon_shared)
  assert rate_shared > rate
  with pytest.raises(ValueError, match='shared_tables'):
    baselines.jpeg_roundtrip(video, 50, optimize=True, shared_tables=True)


def _stream_bytes(video, options):
  """Elementary-stream bytes of an mpeg4 encode, recomputed here."""
  encoder = av.CodecContext.create('mpeg4', 'w')
  encoder.width, encoder.height = video.shape[2], video.shape[1]
  encoder.pix_fmt = 'yuv420p'
  encoder.time_base = fractions.Fraction(1, 25)
  encoder.framerate = fractions.Fraction(25, 1)
  encoder.options = options
  size = 0
  for t, frame in enumerate(video):
    frame = av.VideoFrame.from_ndarray(frame, format='rgb24').reformat(
        format='yuv420p')
    frame.pts = t
    size += sum(p.size for p in encoder.encode(frame))
  return size + sum(p.size for p in encoder.encode(None))


def test_mpeg4_rate_is_raw_over_stream_bytes_and_follows_settings():
  video = _video()
  rates = []
  for q in (2, 8, 31):
    recon, rate = baselines.mpeg_roundtrip(video, 'mpeg4', qscale=q)
    assert recon.shape == video.shape and recon.dtype == np.uint8
    expected = video.nbytes / _stream_bytes(
        video, {'qmin': str(q), 'qmax': str(q)})
    assert rate == pytest.approx(expected)
    rates.append(rate)
  assert rates[0] < rates[1] < rates[2]
  by_bitrate = [baselines.mpeg_roundtrip(video, 'mpeg4', bitrate=b)[1]
                for b in (10_000, 5_000, 2_500)]
  assert by_bitrate[0] < by_bitrate[1] < by_bitrate[2]


def test_x264_rate_grows_with_crf_and_container_adds_bytes():
  video = _video()
  rates = [baselines.mpeg_roundtrip(video, 'libx264', crf=c)[1]
           for c in (18, 35, 51)]
  assert rates[0] < rates[1] < rates[2]
  _, stream = baselines.mpeg_roundtrip(video, 'libx264', crf=35)
  recon, container = baselines.mpeg_roundtrip(video, 'libx264', crf=35,
                                              measure='container')
  assert recon.shape == video.shape
  assert container < stream  # The .mp4 file holds more than the stream.


def test_odd_sizes_and_bad_settings():
  video = _video(t=3, h=17, w=15)
  recon, _ = baselines.mpeg_roundtrip(video, 'libx264', crf=30)
  assert recon.shape == video.shape
  with pytest.raises(ValueError, match='exactly one'):
    baselines.mpeg_roundtrip(video, 'mpeg4', crf=20, bitrate=1000)
  with pytest.raises(ValueError, match='crf'):
    baselines.mpeg_roundtrip(video, 'mpeg4', crf=20)
  with pytest.raises(ValueError, match='uint8'):
    baselines.jpeg_roundtrip(video.astype(np.float32), 50)


def test_sweep_rows():
  videos = [_video(), _video()[:, ::-1].copy()]
  rows = list(baselines.sweep(videos, jpeg_qualities=(75, 10),
                              mpeg4_bitrates=(20_000,), x264_crfs=(30,)))
  assert [r['codec'] for r in rows] == ['jpeg', 'jpeg', 'mpeg4', 'libx264']
  for r in rows:
    assert set(r) == {'codec', 'setting', 'cr', 'psnr', 'ssim', 'mae'}
    assert r['cr'] > 1 and 10 < r['psnr'] < 60 and 0 < r['ssim'] <= 1
  assert rows[0]['psnr'] > rows[1]['psnr'] and rows[0]['cr'] < rows[1]['cr']


def test_downscaled_baselines_reach_higher_rates_scored_at_full_size():
  video = _video()
  full, half = (list(baselines.sweep(
      [video], jpeg_qualities=(), mpeg4_bitrates=(), x264_crfs=(30,),
      mpeg4_qscales=(10,), downscales=downscales))
                for downscales in ((), (0.5,)))
  assert [(r['codec'], r['setting']) for r in half] == [
      ('mpeg4', 'q=10'), ('libx264', 'crf=30'), ('mpeg4', 'q=10,x0.5'),
      ('libx264', 'crf=30,x0.5')]
  assert half[:2] == full
  for at_full, at_half in zip(half[:2], half[2:]):
    assert at_half['cr'] > at_full['cr'] and at_half['psnr'] < at_full['psnr']
  recon, rate = baselines.downscaled_roundtrip(video, 0.5, 'libx264', crf=30)
  assert recon.shape == video.shape and recon.dtype == np.uint8
  assert rate == pytest.approx(half[3]['cr'])


def test_mpeg4_fixed_quantiser_reaches_rates_its_rate_control_does_not():
  video = _video()
  rows = list(baselines.sweep([video], jpeg_qualities=(),
                              mpeg4_bitrates=(1_000,), x264_crfs=(),
                              mpeg4_qscales=(31, 4)))
  assert [(r['codec'], r['setting']) for r in rows] == [
      ('mpeg4', 'b=1000'), ('mpeg4', 'q=31'), ('mpeg4', 'q=4')]
  rate_controlled, coarsest, finest = rows
  assert coarsest['cr'] > rate_controlled['cr']
  assert coarsest['cr'] > finest['cr'] and coarsest['psnr'] < finest['psnr']


@pytest.mark.parametrize('codec', ['libx265', 'libsvtav1'])
def test_h265_and_av1_rates_grow_with_crf_as_quality_drops(codec):
  if codec not in av.codecs_available:
    pytest.skip(f'This PyAV build has no {codec} encoder.')
  video = _video()
  high, low = (baselines.mpeg_roundtrip(video, codec, crf=c)
               for c in (20, 50))
  assert high[0].shape == low[0].shape == video.shape
  assert high[1] < low[1]  # Higher crf: fewer bytes.
  psnr = lambda r: 10 * np.log10(  # pylint: disable=g-long-lambda
      255**2 / np.mean((r.astype(float) - video) ** 2))
  assert psnr(high[0]) > psnr(low[0])


def test_sweep_adds_h265_and_av1_rows_when_asked():
  rows = list(baselines.sweep([_video()], jpeg_qualities=(),
                              mpeg4_bitrates=(), x264_crfs=(),
                              x265_crfs=(30,), av1_crfs=(40,)))
  expected = [c for c in ('libx265', 'libsvtav1') if c in av.codecs_available]
  assert [r['codec'] for r in rows] == expected
