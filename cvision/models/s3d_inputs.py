r"""What an S3D reads: pixels, neural codes or decoded codes.

Shared by the projects that put an S3D on any of the three (S3D
classification, collaborative memory), so that both build the same network
for the same input from the same config fields:

| input           | raw batch entry                  | network input          |
|-----------------|----------------------------------|------------------------|
| rgb             | `[B, T, H, W, 3]` uint8          | the frames in [0, 1]   |
| codes           | `[B, T_c, H_c, W_c, N]` ints     | `[..., N*D]` embedded  |
| reconstructions | codes, as above                  | decoded frames, [0, 1] |

The codec itself is the caller's (`cvision.projects.codec.frozen`): this
module takes its codebook `[N, K, D]` and, for reconstructions, its `decode`,
and never trains either.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from cvision.core import precision
from cvision.models import code_embedding
from cvision.models import s3d

INPUTS = ('rgb', 'codes', 'reconstructions')
# The `config.model` fields `s3d_for_input` reads.
MODEL_FIELDS = frozenset({
    'num_classes', 'width_multiplier', 'min_channels', 'gating',
    'dropout_rate', 'code_projection_channels', 'code_correlation_radius',
    'code_correlation_only', 'stem_conv1_channels', 'stem_conv2_channels',
    'stem_conv1_separable', 'stem_conv1_kernel'})
NetworkInput = Callable[[Any, jax.Array], jax.Array]


def check_input(input_type: str, inputs: Sequence[str] = INPUTS) -> str:
  """`config.input`, refused naming the choices unless one of `inputs`."""
  if input_type not in inputs:
    raise ValueError(f'config.input={input_type!r}: expected one of '
                     f'{tuple(inputs)}.')
  return input_type


def code_stem(spatial_factor: int, conv1_channels: int,
              conv2_channels: int, conv1_separable: bool,
              conv1_kernel: Sequence[int]) -> s3d.StemConfig:
  """The stem for codes at 1/`spatial_factor` of the pixel grid."""
  # Only the ratio matters; 64 keeps the ceil divisions of the check exact.
  return s3d.stem_for_input((1, 64, 64),
                            (1, 64 * spatial_factor, 64 * spatial_factor),
                            conv1_channels, conv2_channels, conv1_separable,
                            conv1_kernel)


def stem_from_config(model_config: ml_collections.ConfigDict,
                     spatial_factor: int = 1) -> s3d.StemConfig:
  """The stem of a resolved `config.model`, for inputs at 1/`spatial_factor`.

  1 is pixels (RGB or decoded codes); codes pass their codec's factor.
  """
  return code_stem(spatial_factor, model_config.stem_conv1_channels,
                   model_config.stem_conv2_channels,
                   model_config.stem_conv1_separable,
                   model_config.stem_conv1_kernel)


def s3d_for_input(model_config: ml_collections.ConfigDict, input_type: str,
                  *, spatial_factor: int, head: str,
                  compute_dtype: str) -> s3d.S3D:
  """The S3D of `model_config` that reads `input_type`.

  Args:
    model_config: `config.model` (fields: `MODEL_FIELDS`).
    input_type: one of `INPUTS`.
    spatial_factor: pixels per code cell of the codes' codec (1 for pixels).
    head: 'video', 'frame' or 'none' (`s3d.S3D.head`).
    compute_dtype: `config.train.compute_dtype`.
  """
  m = model_config
  codes = check_input(input_type) == 'codes'
  return s3d.S3D(
      num_classes=m.num_classes, width_multiplier=m.width_multiplier,
      min_channels=m.min_channels, gating=m.gating,
      stem=stem_from_config(m, spatial_factor if codes else 1),
      head=head, dropout_rate=m.dropout_rate,
      # The code-input options read codes; pixels have none of them.
      input_projection=m.code_projection_channels if codes else 0,
      input_correlation=m.code_correlation_radius if codes else 0,
      input_correlation_only=m.code_correlation_only and codes,
      # S3D computes in its `dtype` whatever its parameters' dtype is.
      dtype=precision.compute_dtype(compute_dtype))


def network_input(input_type: str, codebook: jax.Array | None = None,
                  decode: Callable[[jax.Array], jax.Array] | None = None
                  ) -> NetworkInput:
  """`(params, raw batch entry) -> [B, T, H, W, C]`, what the S3D sees.

  Args:
    input_type: one of `INPUTS`.
    codebook: `[N, K, D]`, the frozen codec's codebook (codes). Closed over
      as a device constant, hoisted by jit as an argument: never a
      parameter, so neither the optimizer nor a checkpoint sees it.
    decode: `[B, T_c, H_c, W_c, N]` ints -> `[B, T, H, W, 3]` in [0, 1], the
      frozen codec's decoder (reconstructions).

  Returns:
    The function; the output is in the compute dtype of `params`.
  """
  check_input(input_type)
  if input_type == 'codes' and codebook is None:
    raise ValueError("config.input='codes' needs the codec's codebook.")
  if input_type == 'reconstructions' and decode is None:
    raise ValueError("config.input='reconstructions' needs the codec's "
                     'decoder.')
  if codebook is not None:
    codebook = jnp.asarray(codebook)

  def to_network(params, raw: jax.Array) -> jax.Array:
    if input_type == 'rgb':
      return precision.to_unit_float(raw, params)
    dtype = precision.floating_dtype(params)
    if input_type == 'codes':
      # embed_codes stops gradients into the codebook as well.
      return code_embedding.embed_codes(codebook, raw, dtype)
    return decode(raw).astype(dtype)

  return to_network
