"""Stages: pure functions of their inputs, each with a version string for its cache key.

`face_mesh` (mediapipe's face detector and 478-point mesh) and `face_geometry` (a
face's points, box and named regions), `skin` (person segmentation, face regions and a
skin colour model), `frequency` (Gaussian band split and merge) and `latent` (the slot
the diffusion engine fills). numpy, OpenCV and mediapipe only: no torch here; pixel
conversions come from `imaging.convert`.
"""
