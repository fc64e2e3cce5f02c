r"""The neural video codec (VQ-VAE, Wiles et al. 2022, Sec. 3.2, App. E).

  python experiments/main.py --config=experiments/configs/codec.py:cpu \
      --workdir=/tmp/codec --mode=train|eval|encode|decode|probe

Results, with the command of every figure: docs/results/codec.md.

Presets (after the colon; comma-separated presets apply in order):

| preset     | input      | E_s | T_s | grid (T,H,W) | N | K    | CR    | for    |
|------------|------------|-----|-----|--------------|---|------|-------|--------|
| cr30       | 32x256x256 | 2   | 1   | 32x64x64     | 1 | 8192 | 29.5  | GPU/TPU|
| cr236      | 32x256x256 | 4   | 1   | 32x16x16     | 2 | 8192 | 236.3 | GPU/TPU|
| cr236_time | 32x256x256 | 3   | 8   | 4x32x32      | 4 | 8192 | 236.3 | GPU/TPU|
| cr256      | 32x256x256 | 4   | 1   | 32x16x16     | 2 | 4096 | 256   | GPU/TPU|
| cr384      | 32x256x256 | 4   | 1   | 32x16x16     | 2 | 256  | 384   | GPU/TPU|
| cr475      | 32x256x256 | 4   | 1   | 32x16x16     | 1 | 8192 | 472.6 | GPU/TPU|
| cr768      | 32x256x256 | 4   | 1   | 32x16x16     | 1 | 256  | 768   | GPU/TPU|
| cpu        | 16x64x64   | 2*  | 1   | 16x8x8       | 2 | 256  | 96    | CPU    |
| cpu30      | 16x64x64   | 2   | 1   | 16x16x16     | 2 | 64   | 32    | CPU    |
| gpu30      | 16x64x64   | 2   | 1   | 16x16x16     | 2 | 64   | 32    | GPU    |
| tiny       | 8x32x32    | 2   | 1   | 8x8x8        | 2 | 32   | 38.4  | tests  |

E_s: strided encoder blocks (each halves H, W; *the `cpu` preset folds a 2x2
space-to-depth patch first, then 2 strided blocks); gpu30 is cpu30's code
grid with the paper's network depth and width (V_e 128, E_c 3, D_c 5), for
one accelerator on the generated 64x64 videos; T_s: temporal stride
(paper B.2 time compression). cr236 is the paper's B.2 space-compression
setting (32x16x16x2); cr236_time its time-compression twin (4x32x32x4).
CR = T*H*W*3*8 / (T_c*H_c*W_c*N*log2 K) (`cvision.projects.codec.compression_rate`).
The paper-size presets read `data.builder_kwargs.config='paper'` (generated,
32x256x256); point `data` at your own videos for real runs.
"""
from experiments.configs import base


def _model(c, *, strided, res_enc, res_dec, dim, n, k):
  c.model.num_strided_blocks = strided
  c.model.num_upsampling_blocks = strided
  c.model.num_encoder_res_blocks = res_enc
  c.model.num_decoder_res_blocks = res_dec
  c.model.embedding_dim = dim
  c.model.num_codebooks = n
  c.model.codebook_size = k


def _paper(c, *, strided, n, k, temporal_stride=1):
  # Paper sweeps (App. E.3): E_c, D_c in {3, 5, 7}, V_e in {128, 256, 512};
  # more decoder blocks help more than encoder blocks.
  _model(c, strided=strided, res_enc=3, res_dec=5, dim=256, n=n, k=k)
  c.model.temporal_stride = temporal_stride
  c.data.builder_kwargs.config = 'paper'
  c.data.batch_size = 8
  c.train.steps = 100_000
  c.train.checkpoint_every = 2000
  c.train.log_every = 100
  c.train.eval_every = 5000
  c.train.eval_batches = 16
  c.train.compute_dtype = 'bfloat16'
  c.optimizer.learning_rate = 3e-4
  c.optimizer.warmup_steps = 1000


def _cpu(c):
  # The fastest CR-96 network on a 2-core CPU: a 2x2 space-to-depth patch
  # then 2 strided blocks (an 8x8 grid), narrow channels, faster EMA.
  _model(c, strided=2, res_enc=1, res_dec=2, dim=32, n=2, k=256)
  c.model.space_to_depth = 2
  c.model.ema_decay = 0.9
  c.data.builder_kwargs.config = 'small'
  c.data.batch_size = 8
  # Random 4-frame crops train it, and it encodes and decodes longer clips
  # in 4-frame windows: run whole on 16-frame videos, its interior frames
  # (never seen away from the clip's temporal padding) lost 0.05 SSIM.
  c.data.train_clip_frames = 4
  c.model.window_frames = 4
  c.train.steps = 3000
  c.train.checkpoint_every = 500
  c.train.log_every = 100
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 100


def _cpu30(c):
  # A 16x16 grid (4x4 pixels a code) keeps the digit's shape, where the 8x8
  # grid of `cpu` keeps a blob; 2 x 6 bits a position keep CR >= 30.
  _cpu(c)
  c.model.codebook_size = 64
  c.model.space_to_depth = 1


def _gpu30(c):
  # cpu30's code grid and rate, so its codes drop into the same S3D and
  # augmenter configs, with the paper's network size (App. E.3). On 2 CPU
  # cores cpu30's narrow network reaches reconstruction SSIM 0.863 in 2000
  # steps and 0.909 in 4500 (1.5 hours; whole test videos in 4-frame
  # windows), and the learned crop's SSIM follows it. About 3 TFLOP a step
  # in bf16 (XLA's count; 30M parameters).
  _cpu30(c)
  _model(c, strided=2, res_enc=3, res_dec=5, dim=128, n=2, k=64)
  c.data.batch_size = 16
  c.train.steps = 20_000
  c.train.checkpoint_every = 1000
  c.train.eval_every = 5000
  c.train.eval_batches = 8
  c.train.compute_dtype = 'bfloat16'
  c.optimizer.learning_rate = 5e-4
  c.optimizer.warmup_steps = 500


def _tiny(c):
  _model(c, strided=2, res_enc=1, res_dec=1, dim=8, n=2, k=32)
  c.data.builder_kwargs.config = 'tiny'
  c.data.batch_size = 4
  c.train.steps = 4
  c.train.log_every = 2
  c.train.checkpoint_every = 2
  c.train.eval_batches = 1
  c.eval.num_videos = 4
  c.eval.jpeg_qualities = (5, 50)
  c.eval.mpeg4_bitrates = (20_000, 200_000)
  c.eval.mpeg4_qscales = (31,)
  c.eval.baseline_downscales = ()
  c.eval.h264_crfs = (40,)
  c.eval.h265_crfs = (40,)
  c.eval.av1_crfs = (55,)
  c.encode.examples_per_shard = 8
  c.decode.num_videos = 2


def _model_parallel(c):
  # Output channels of the conv kernels and biases split over
  # a 2-way `model` axis, the batch over the rest: the widest layers' weights
  # and Adam moments take half the memory per device; a layer whose width 2
  # does not divide stays replicated (sharding.state_shardings warns). Add
  # after a size preset: `cr236,model_parallel`.
  c.mesh.shape = (-1, 2)
  c.sharding.logical_axis_rules = (('conv_out', 'model'),)


PRESETS = {
    'cr30': lambda c: _paper(c, strided=2, n=1, k=8192),
    'cr236': lambda c: _paper(c, strided=4, n=2, k=8192),
    'cr236_time': lambda c: _paper(c, strided=3, n=4, k=8192,
                                   temporal_stride=8),
    'cr256': lambda c: _paper(c, strided=4, n=2, k=4096),
    'cr384': lambda c: _paper(c, strided=4, n=2, k=256),
    'cr475': lambda c: _paper(c, strided=4, n=1, k=8192),
    'cr768': lambda c: _paper(c, strided=4, n=1, k=256),
    'cpu': _cpu,
    'cpu30': _cpu30,
    'gpu30': _gpu30,
    'tiny': _tiny,
    'model_parallel': _model_parallel,
}


def get_config(arg: str | None = None):
  c = base.get_base_config()
  c.task = 'codec'

  # Encoder / quantiser / decoder (paper Table 10).
  c.model.num_strided_blocks = 3  # E_s: each halves H and W.
  c.model.num_encoder_res_blocks = 1  # E_c
  c.model.num_decoder_res_blocks = 2  # D_c
  c.model.num_upsampling_blocks = 3  # D_s (= E_s)
  c.model.embedding_dim = 64  # V_e, split over the codebooks.
  c.model.num_codebooks = 2  # N
  c.model.codebook_size = 256  # K
  c.model.space_to_depth = 1  # Pixel patch folded into channels; 1 = off.
  c.model.temporal_stride = 1  # Time compression (paper B.2); 1 = off.
  c.model.commitment_cost = 0.25
  c.model.ema_decay = 0.99
  c.model.dead_code_threshold = 1.0  # EMA assignments per step.
  # Encode and decode longer clips in windows of this many frames, the
  # training clip length (0 = whole clips; `vqvae.VQVAE`).
  c.model.window_frames = 0

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.grad_clip_norm = 1.0

  # --mode=eval: reconstruction metrics and the JPEG / MPEG baselines,
  # whose compression rates are measured from the bytes they write.
  c.eval.split = 'test'
  c.eval.num_videos = 128  # Held-out videos, the same for every codec.
  c.eval.jpeg_qualities = (1, 5, 10, 25, 50, 75, 90)
  c.eval.mpeg4_bitrates = (10_000, 25_000, 50_000, 100_000, 200_000,
                           400_000, 800_000)
  # MPEG-4 at a fixed quantiser: below ~10 kbit/s its rate control gives
  # the same bytes whatever is asked (CR 125 on 16x64x64 clips), q=31 goes
  # to ~210.
  c.eval.mpeg4_qscales = (31, 20, 10, 5)
  # H.264 and fixed-quantiser MPEG-4 again at these fractions of the side,
  # upscaled after decoding: how they reach the rates of the codec's stored
  # codes, which their headers forbid at full size on small clips.
  c.eval.baseline_downscales = (0.5, 0.25)
  c.eval.h264_crfs = (51, 45, 40, 35, 30, 25, 20)
  # H.265 and AV1 (SVT-AV1), where this PyAV build has the encoders.
  c.eval.h265_crfs = (51, 45, 40, 35, 30, 25)
  c.eval.av1_crfs = (63, 55, 45, 35, 25)

  # --mode=encode: the dataset in `data`, written once as codes.
  c.encode = base.ml_collections.ConfigDict()
  c.encode.output_dir = ''  # Default: WORKDIR/codes/<dataset name>.
  c.encode.splits = ('train', 'validation', 'test')
  c.encode.examples_per_shard = 256
  c.encode.chunk_frames = 0  # >0: encode long clips in time chunks.
  # 'entropy': codes range-coded over time (`codec/entropy_coding.py`),
  # lossless, read back transparently; 'raw': zlib of the index array.
  c.encode.code_storage = 'raw'
  # With 'entropy': fit the coder's prior (P(index | previous index), P(index
  # | other codebook)) on this many first train clips; 0 = no prior.
  c.encode.entropy_prior_clips = 256

  # --mode=import: a codec pickle of the paper's release
  # (google-deepmind/compressed_vision) becomes this --workdir's run.
  # docs/release_codecs.md.
  c.release = base.ml_collections.ConfigDict()
  c.release.pickle = ''

  # --mode=decode: codes back to frames, a PNG grid and mp4s to look at.
  c.decode = base.ml_collections.ConfigDict()
  c.decode.dataset_dir = ''  # Default: encode.output_dir.
  c.decode.split = 'test'
  c.decode.num_videos = 4

  # --mode=probe: how directly the codes show where pixels move
  # (`cvision.projects.codec.probe`; needs videos with a static background).
  c.probe = base.ml_collections.ConfigDict()
  c.probe.split = 'test'
  c.probe.num_videos = 128
  c.probe.threshold = 0.08  # Mean |pixel - temporal median| of a moving cell.

  for preset in base.parse_presets(arg or 'cpu', PRESETS):
    PRESETS[preset](c)
  return c
