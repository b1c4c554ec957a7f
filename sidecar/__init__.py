"""Local sidecar for ML retouching in Photoshop: images, jobs, cache and models."""

__version__ = "0.1.0"
