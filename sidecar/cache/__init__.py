"""Content-hash keys and stores (bytes and arrays; no torch, no pickle)."""

from .images import ImageStore, StoredImage
from .keys import image_id

__all__ = ["ImageStore", "StoredImage", "image_id"]
