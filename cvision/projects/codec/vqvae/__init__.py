"""VQ-VAE neural codec for video (paper Sec. 3.2, Table 10)."""
from cvision.projects.codec.vqvae.decoder import Decoder
from cvision.projects.codec.vqvae.encoder import Encoder
from cvision.projects.codec.vqvae.model import VQVAE
from cvision.projects.codec.vqvae.quantizer import codes_to_latents
from cvision.projects.codec.vqvae.quantizer import COLLECTION
from cvision.projects.codec.vqvae.quantizer import VectorQuantizer

__all__ = [
    'COLLECTION', 'Decoder', 'Encoder', 'VQVAE', 'VectorQuantizer',
    'codes_to_latents'
]
