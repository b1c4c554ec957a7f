"""Stages: pure functions of their inputs, each with a version string for its cache key.

`face_mesh` (mediapipe's face detector and 478-point mesh) and `face_geometry` (a
face's points, box and named regions), `skin` (face regions, a skin colour model and
the texture of hair) with `person` (the person segmentation) and `pooled` (its parts
run beside each other), `frequency` (Gaussian band split and merge) and `latent` (the slot
the diffusion engine fills). numpy, OpenCV and mediapipe only: no torch here; pixel
conversions come from `imaging.convert`.
"""
