"""How the retouch engine's stages go to the disk tier of the stage cache: named
arrays and a little JSON (see `cache.disk`), never pickled."""

from __future__ import annotations

import numpy as np

from ...stages.face_geometry import Face
from .analysis import Analysis


class ArrayCodec:
    def encode(self, value: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
        return {"array": value}, {"kind": "array"}

    def decode(self, arrays: dict[str, np.ndarray], meta: dict) -> np.ndarray:
        return arrays["array"]


class AnalysisCodec:
    def encode(self, value: Analysis) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"rgb": value.rgb, "mask": value.mask}
        faces = []
        for index, face in enumerate(value.faces):
            arrays[f"face{index}"] = face.points
            faces.append({"box": list(face.box), "score": face.score})
        meta = {"kind": "analysis", "width": value.width, "height": value.height, "faces": faces}
        return arrays, meta

    def decode(self, arrays: dict[str, np.ndarray], meta: dict) -> Analysis:
        faces = []
        for index, face in enumerate(meta["faces"]):
            points = arrays[f"face{index}"]
            points.setflags(write=False)
            box = tuple(float(v) for v in face["box"])
            faces.append(Face(points, box, float(face["score"])))  # type: ignore[arg-type]
        return Analysis(
            int(meta["width"]), int(meta["height"]), arrays["rgb"], tuple(faces), arrays["mask"]
        )


ARRAY = ArrayCodec()
ANALYSIS = AnalysisCodec()
