"""Compressed-domain action recognition with Spiking Temporal Modulators.

After "Towards Scalable Modeling of Compressed Videos for Efficient Action
Recognition" (Das Biswas et al.): I-frames, motion vectors and residuals of
MPEG-4 GOPs; ConvLIF temporal modulators over the P-frames (`lif`,
`temporal_modulator`), convolutional patch embeddings (`spatial_modulator`),
a transformer over the tokens of all modalities (`transformer`), a
multi-modal mixer (`mixer`) and the whole classifier (`model`).
"""
