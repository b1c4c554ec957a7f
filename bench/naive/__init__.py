"""The baseline: the straightforward design people write first, small and honest.

- `cache`: results pickled to disk, one file each, keyed by a hash of the first 64 KB
  of the image's pixels (plus op, params and intensity);
- `retouch`: every Apply runs the same retouch engine ops at full resolution, with no
  stage cache and no drafts, before anything is shown; a batch is a loop that loads the
  model for each image and caches nothing;
- `diffusion`: every denoising step decodes the whole latent with the VAE and sends it
  as a JPEG, hex-encoded inside SSE JSON;
- `server`: an aiohttp app that takes images as base64 in JSON and runs Applies one at a
  time in arrival order (FIFO).

The benchmarks drive it with the same harness as the product, side by side.
"""
