"""VQ-VAE neural codec for video (paper Sec. 3.2, Table 10)."""
from cvision.models.vqvae.decoder import Decoder
from cvision.models.vqvae.encoder import Encoder
from cvision.models.vqvae.model import VQVAE
from cvision.models.vqvae.quantizer import codes_to_latents
from cvision.models.vqvae.quantizer import COLLECTION
from cvision.models.vqvae.quantizer import VectorQuantizer

__all__ = [
    'COLLECTION', 'Decoder', 'Encoder', 'VQVAE', 'VectorQuantizer',
    'codes_to_latents'
]
