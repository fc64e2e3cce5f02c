"""The quickstart notebook runs top to bottom, headless, with no cell error.

Slow (a few minutes on a 2-core CPU): `.ci/run` runs it after the default
tests. The install cell is skipped (`CVISION_SKIP_INSTALL=1`): the package
is already installed where the tests run.
"""
import os

import nbclient
import nbformat
import pytest

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'notebooks', 'quickstart.ipynb')


def _outputs_text(cell) -> str:
  parts = []
  for output in cell.get('outputs', []):
    parts.append(output.get('text', ''))
    parts.append(output.get('data', {}).get('text/plain', ''))
  return ''.join(parts)


def test_notebook_is_committed_without_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  with_outputs = [i for i, c in enumerate(notebook.cells)
                  if c.cell_type == 'code' and (c.outputs or c.execution_count)]
  assert not with_outputs, f'cells {with_outputs} keep outputs: clear them.'
  first_code = next(c for c in notebook.cells if c.cell_type == 'code')
  assert first_code.source.startswith('PAPER_SIZES = False'), (
      'The first code cell must set PAPER_SIZES = False (the default sizes).')


@pytest.mark.slow
def test_quickstart_runs_without_errors(tmp_path, monkeypatch):
  # The kernel inherits this environment.
  monkeypatch.setenv('CVISION_SKIP_INSTALL', '1')
  monkeypatch.setenv('CVISION_NOTEBOOK_DIR', str(tmp_path))
  monkeypatch.setenv('JAX_PLATFORMS', os.environ.get('JAX_PLATFORMS', 'cpu'))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=900, kernel_name='python3',
      resources={'metadata': {'path': os.path.dirname(NOTEBOOK)}})
  client.execute()  # Raises CellExecutionError naming the failing cell.

  text = '\n'.join(_outputs_text(c) for c in notebook.cells
                   if c.cell_type == 'code')
  figures = sum('image/png' in o.get('data', {}) for c in notebook.cells
                if c.cell_type == 'code' for o in c.get('outputs', []))
  # Frames (dataset, reconstructions, augmentation) and the S3D curves.
  assert figures >= 5, f'{figures} figures shown'
  assert 'codes in ' in text and 'smaller' in text
  for run in ('codec', 's3d_codes', 's3d_rgb', 'augmenter_flip'):
    assert os.path.isfile(tmp_path / run / 'metrics.jsonl'), run
  assert not os.path.exists(os.path.join(os.path.dirname(NOTEBOOK),
                                         'datasets')), 'wrote into the repo'
