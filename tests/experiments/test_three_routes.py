"""The three-route table, on hand-made run directories."""
import json
import os

import pytest
from array_record.python import array_record_module

from experiments import three_routes
from tests.conftest import REPO_ROOT


def _write(path, payload):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    if isinstance(payload, str):
      f.write(payload)
    else:
      json.dump(payload, f)


def _dataset(root, name, split_bytes):
  """A TFDS-like directory: `split_bytes` = {split: (videos, record bytes)}.

  Each video is one record of `record bytes / videos` bytes in an
  array_record file, which pads it to its block size on disk.
  """
  os.makedirs(root, exist_ok=True)
  splits = []
  for split, (videos, size) in split_bytes.items():
    writer = array_record_module.ArrayRecordWriter(
        os.path.join(root, f'{name}-{split}.array_record-00000-of-00001'),
        'group_size:1')
    for _ in range(videos):
      writer.write(b'x' * (size // videos))
    writer.close()
    splits.append({'name': split, 'shardLengths': [str(videos)],
                   'numBytes': '1'})
  _write(os.path.join(root, 'dataset_info.json'),
         {'name': name, 'splits': splits})
  _write(os.path.join(root, 'features.json'), '{"x": "metadata, not data"}')
  return root


def _disk_bytes(root):
  return sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root)
             if '.array_record-' in f)


def _metrics(workdir, rates):
  lines = [json.dumps({'step': 10 * (i + 1), 'split': 'train', 'loss': 1.0,
                       'steps_per_sec': r}) for i, r in enumerate(rates)]
  lines.insert(1, json.dumps({'step': 10, 'split': 'validation', 'top1': 1}))
  _write(os.path.join(workdir, 'metrics.jsonl'), '\n'.join(lines) + '\n')


@pytest.fixture
def runs(tmp_path):
  # The same 10 videos (8 train, 2 test) as pixels, codes and MPEG.
  pixels = _dataset(str(tmp_path / 'data' / 'moving_digits' / 'tiny' /
                        '1.0.0'), 'moving_digits',
                    {'train': (8, 8000), 'test': (2, 2000)})  # 1000 each.
  # An older version is not the one a build reads.
  _dataset(str(tmp_path / 'data' / 'moving_digits' / 'tiny' / '0.9.0'),
           'moving_digits', {'train': (1, 1)})
  codes = _dataset(str(tmp_path / 'codes'), 'codes',
                   {'train': (8, 400), 'test': (2, 100)})
  mpeg = _dataset(str(tmp_path / 'gops'), 'mpeg_gops',
                  {'train': (8, 1600), 'test': (2, 400)})
  codec = str(tmp_path / 'codec')
  _write(os.path.join(codes, 'metadata.json'), {'codec_workdir': codec})
  _write(os.path.join(codes, 'encode_summary.json'), {'encode_seconds': 5.0})
  _write(os.path.join(mpeg, 'metadata.json'), {'build_seconds': 7.0})
  # Codec loop: 100 steps at 10/s then 100 at 20/s = 15 s.
  _write(os.path.join(codec, 'metrics.jsonl'), ''.join(
      json.dumps({'step': s, 'split': 'train', 'steps_per_sec': r}) + '\n'
      for s, r in ((100, 10.0), (200, 20.0))))

  rgb = str(tmp_path / 's3d_rgb')
  _write(os.path.join(rgb, 'config.json'), {
      'task': 's3d_classification', 'input': 'rgb',
      'data': {'dataset_dir': '', 'data_dir': str(tmp_path / 'data'),
               'name': 'moving_digits',
               'builder_kwargs': {'config': 'tiny'}}})
  _write(os.path.join(rgb, 'eval', 's3d_test.json'), {'rows': [
      {'num_clips': 1, 'top1': 0.5, 'top5': 0.9},
      {'num_clips': 2, 'top1': 0.55, 'top5': 0.9},
      {'num_clips': 4, 'top1': 0.625, 'top5': 1.0}]})
  _write(os.path.join(rgb, 'eval', 'input_rate.json'),
         {'examples_per_s': 123.4})
  _metrics(rgb, [0.1, 4.0, 5.0, 2.0])  # Median after compile: 4/s.

  cm = str(tmp_path / 'cm_codes')
  _write(os.path.join(cm, 'config.json'), {
      'task': 'collab_memory', 'input': 'codes', 'codec': {'workdir': ''},
      'data': {'dataset_dir': codes}})
  _write(os.path.join(cm, 'eval', 'collab_memory_test.json'),
         {'top1': 0.75, 'eval_clips': 4, 'input': 'codes'})
  _metrics(cm, [0.5])

  stm = str(tmp_path / 'mpeg')
  _write(os.path.join(stm, 'config.json'), {
      'task': 'mpeg_stm', 'data': {'dataset_dir': mpeg}})
  _write(os.path.join(stm, 'eval', 'mpeg_stm_test.json'),
         {'top1': 0.25, 'energy_j': 3.5e-5})
  disk = {name: _disk_bytes(root) / 10
          for name, root in (('rgb', pixels), ('codes', codes),
                             ('mpeg', mpeg))}
  return rgb, cm, stm, disk


def test_rows_hold_the_runs_recorded_values(runs):
  rgb, cm, stm, disk = runs
  rgb_row = three_routes.gather_run(rgb, 'test')
  assert rgb_row['route'] == 'rgb' and rgb_row['model'] == 'S3D'
  assert rgb_row['top1'] == {'1': 0.5, '2': 0.55, '4': 0.625}
  # 10000 bytes of records in 10 videos; on disk array_record's blocks.
  assert rgb_row['payload_bytes_per_video'] == 1000
  assert rgb_row['bytes_per_video'] == disk['rgb'] > 1000
  assert rgb_row['dataset_dir'].endswith('1.0.0')
  assert rgb_row['input_examples_per_s'] == 123.4
  assert rgb_row['train_step_s'] == pytest.approx(0.25)
  assert rgb_row['energy_j'] is None and rgb_row['build_s'] is None

  cm_row = three_routes.gather_run(cm, 'test')
  assert cm_row['route'] == 'codes' and cm_row['model'] == 'S3D + CM'
  assert cm_row['top1'] == {'4': 0.75}
  assert cm_row['payload_bytes_per_video'] == 50
  assert cm_row['bytes_per_video'] == disk['codes']
  assert cm_row['train_step_s'] == pytest.approx(2.0)
  assert 'one logged interval: compile included' in cm_row['notes']
  assert 'input rate not measured' in cm_row['notes']
  # The codec named by the code dataset's metadata: 15 s of its loop, and
  # the 5 s its --mode=encode recorded.
  assert cm_row['build_s'] == pytest.approx(20.0)
  assert 'build: codec training 15 s + encoding 5 s' in cm_row['notes']
  os.remove(os.path.join(cm_row['dataset_dir'], 'encode_summary.json'))
  cm_row = three_routes.gather_run(cm, 'test')
  assert cm_row['build_s'] == pytest.approx(15.0)
  assert ('build: codec training only, encoding not recorded'
          in cm_row['notes'])

  stm_row = three_routes.gather_run(stm, 'test')
  assert stm_row['route'] == 'mpeg' and stm_row['top1'] == {'1': 0.25}
  assert stm_row['payload_bytes_per_video'] == 200
  assert stm_row['bytes_per_video'] == disk['mpeg']
  assert stm_row['energy_j'] == 3.5e-5
  assert stm_row['build_s'] == 7.0  # The mpeg_gops build's own record.
  assert stm_row['train_step_s'] is None
  assert 'no metrics.jsonl' in stm_row['notes']


def test_table_json_and_plot_are_written(runs, tmp_path):
  rgb, cm, stm, disk = runs
  out = str(tmp_path / 'out')
  result = three_routes.gather([rgb, cm, stm], out)
  lines = result['table'].splitlines()
  assert lines[0].startswith('| run | route | model | top-1 1 clip (%) | '
                             'top-1 4 clips (%) | bytes / video on disk | '
                             'payload bytes / video |')
  assert lines[2].startswith(
      f"| s3d_rgb | pixels | S3D | 50.0 | 62.5 | {disk['rgb']:,.0f} | 1,000 | "
      '123.4 | 250.0 | - | - |')
  assert lines[3].startswith(
      f"| cm_codes | neural codes | S3D + CM | - | 75.0 | {disk['codes']:,.0f} "
      '| 50 | - | 2000.0 | - | 20 |')
  assert lines[4].startswith(
      f"| mpeg | MPEG stream | STM | 25.0 | - | {disk['mpeg']:,.0f} | 200 | - "
      '| - | 35.0 | 7 |')
  with open(os.path.join(out, 'three_routes_test.md')) as f:
    assert f.read() == result['table'] + '\n'
  with open(os.path.join(out, 'three_routes_test.json')) as f:
    assert [r['run'] for r in json.load(f)['rows']] == ['s3d_rgb', 'cm_codes',
                                                        'mpeg']
  with open(result['plot'], 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_missing_pieces_are_named(runs, tmp_path):
  rgb, _, _, _ = runs
  row = three_routes.gather_run(rgb, 'validation')
  assert row['top1'] == {}
  assert ('not evaluated on validation (no eval/s3d_validation.json)'
          in row['notes'])
  with pytest.raises(FileNotFoundError, match='not a trained cvision run'):
    three_routes.gather_run(str(tmp_path / 'nothing'), 'test')
  _write(str(tmp_path / 'codec_run' / 'config.json'), {'task': 'codec'})
  with pytest.raises(ValueError, match="a 'codec' run; the routes table "
                     'reads runs of'):
    three_routes.gather_run(str(tmp_path / 'codec_run'), 'test')
  with pytest.raises(ValueError, match='--runs is empty'):
    three_routes.gather([], str(tmp_path / 'out'))


def test_the_command_prints_the_table_and_errors_in_one_line(runs, tmp_path):
  rgb, cm, stm, _ = runs
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  script = os.path.join(REPO_ROOT, 'experiments', 'three_routes.py')
  proc = subprocess.run(
      [sys.executable, script, f'--runs={rgb},{cm},{stm}',
       f'--out={tmp_path / "out"}'], capture_output=True, text=True,
      timeout=120, check=True)
  assert '| s3d_rgb | pixels | S3D | 50.0 |' in proc.stdout
  proc = subprocess.run(
      [sys.executable, script, f'--runs={tmp_path / "nothing"}',
       f'--out={tmp_path / "out"}'], capture_output=True, text=True,
      timeout=120)
  assert proc.returncode != 0
  assert 'not a trained cvision run' in proc.stderr
  assert 'Traceback' not in proc.stderr
