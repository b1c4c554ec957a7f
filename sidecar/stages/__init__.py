"""Stages: pure functions of their inputs, each with a version string for its cache key.

`landmarks` (mediapipe face mesh), `skin` (person segmentation, face regions and a
skin colour model), `frequency` (Gaussian band split and merge) and `latent` (the slot
the diffusion engine fills). numpy, OpenCV and mediapipe only: no torch here.
"""
