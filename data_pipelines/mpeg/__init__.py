"""The MPEG-4 part 2 compressed domain: I-frames, motion vectors, residuals.

`extract.extract_gops(path_or_bytes)` reads a video as GOPs of an I-frame and
P-frames (re-encoding it with `encoding.encode_mpeg4` when it is not MPEG-4
part 2 with GOPs of 12 and no B-frames, and saying so), rasterises FFmpeg's
exported motion vectors to per-pixel fields (`motion_vectors`), computes the
residuals against the motion-compensated previous frame, and traces both back
to the I-frame (`accumulate`, the paper's Eq. 1-2).
"""
