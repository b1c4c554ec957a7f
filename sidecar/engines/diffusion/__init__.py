"""The diffusion engine: the only room that imports torch and diffusers."""
