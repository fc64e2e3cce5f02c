"""cvision: video understanding directly on compressed video (JAX/Flax)."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements():
  lines = (_HERE / 'requirements.txt').read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith('#')]


setuptools.setup(
    name='cvision',
    version='0.1.0',
    description='Video understanding directly on compressed video, in JAX/Flax.',
    long_description=(_HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    python_requires='>=3.11',
    packages=setuptools.find_packages(include=['cvision*', 'data_pipelines*', 'experiments*']),
    install_requires=_requirements(),
    extras_require={'test': ['pytest>=8', 'pytest-timeout>=2.3', 'nbclient>=0.10', 'nbformat>=5.10', 'ipykernel>=6', 'import-linter>=2.1',
                           # Only for the release codec's output-identity test.
                           'dm-haiku>=0.0.13']},
)
