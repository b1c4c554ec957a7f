"""One file's job on a worker, done as the sidecar does it, so that the same input, op,
params and seed give the same bits as the single-machine batch:

- the upload: the batch's own upload body (`sidecar.batch.outputs.upload_body`, handed
  in as `FileIO.read`), decoded as `POST /v1/images` decodes it (header, limits,
  `imaging.decode`), and the image id of its canonical pixels (`cache.keys`);
- the job: the batch's own request (`Recipe.job`), checked by the engine, its seed
  derived as the scheduler derives it (`jobs.results.derive_seed`), and the engine's
  `run(RunInput(...), ctx)`;
- the result: encoded as `GET /v1/jobs/{id}/result` encodes it (`imaging.encode`), then
  written by the batch's `write_output`, through a write that replaces the output once
  in the run (`claims.ClaimedWrite`).

What the batch owns (how a file is read and written) comes in as `FileIO`, since this
room sits below `batch`; nothing here imports ray.
"""

from __future__ import annotations

import time

import numpy as np

from ..cache.keys import image_id
from ..cache.stages import StageCache
from ..engines import RunInput
from ..engines.retouch import RetouchEngine
from ..errors import ApiError, PayloadTooLarge, UnsupportedMediaType
from ..imaging import Limits, check_dimensions, decode_image, read_header
from ..imaging.decode import MEDIA_TYPES
from ..imaging.encode import encode_file
from ..imaging.psd import PsdError
from ..jobs.results import derive_seed
from ..jobs.worker import engine_failure
from ..schema import JobRequest
from .claims import ClaimedWrite
from .items import Done, Order, Setup


class Steps:
    """The engine's context: no previews or progress go anywhere, and nothing cancels a
    run halfway (a stopped shoot kills its workers)."""

    def stage(self, name: str, index: int, count: int) -> None:
        pass

    def progress(self, fraction: float) -> None:
        pass

    def preview(self, level, rgb, *, step=None, total_steps=None) -> None:
        pass

    def checkpoint(self) -> None:
        pass


def decode_upload(data, content_type: str, limits: Limits, max_bytes: int) -> np.ndarray:
    """The canonical pixels `POST /v1/images` makes of an encoded body."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"request body is over the limit of {max_bytes} bytes",
            details={"max_bytes": max_bytes},
        )
    fmt = MEDIA_TYPES.get(content_type)
    if fmt is None:
        raise UnsupportedMediaType(f"cannot take {content_type}")
    header = read_header(data, fmt, complete=True)
    check_dimensions(header.width, header.height, limits)
    return decode_image(data, header, limits)


def check_request(request: JobRequest) -> None:
    """Refuse, as the workers' engine would (its ApiError), a request that every image
    of the shoot would share: checked once on the driver, before any worker starts.
    The engine made for it loads nothing (its graphs are made on first use)."""
    engine = RetouchEngine(StageCache(1))
    try:
        engine.validate(request)
    finally:
        engine.close()


class Retoucher:
    """A worker's engine, loaded once, and the job of each file it is given."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.engine = RetouchEngine(StageCache(setup.stage_bytes))

    def close(self) -> None:
        self.engine.close()

    def do(self, order: Order) -> Done:
        started = time.perf_counter()
        item, files = order.item, self.setup.files

        def ended(status: str, code: str | None = None, message: str = "", **more) -> Done:
            seconds = time.perf_counter() - started
            return Done(item.name, status, code, message, seconds=seconds, **more)

        try:
            data, content_type = files.read(item.source)
            pixels = decode_upload(
                data, content_type, self.setup.limits, self.setup.max_upload_bytes
            )
        except PsdError as exc:
            return ended("failed", exc.code, exc.message)
        except OSError as exc:
            return ended("failed", "unreadable", exc.strerror or str(exc))
        except ApiError as exc:
            return ended("failed", exc.code, exc.message)
        except MemoryError:
            return ended("failed", "out_of_memory", "not enough memory to take this image now")
        del data
        key = image_id(pixels)
        tone, tone_failed = None, False
        if order.measure_tone:
            try:
                tone = self.engine.skin_tone(key, lambda: pixels)
            except Exception:  # a sidecar that cannot measure it: the batch's prior stops
                tone_failed = True
        learned = {"decoded": True, "tone": tone, "tone_failed": tone_failed}
        try:
            request = files.request(key, item.name, item.hero, order.prior)
            self.engine.validate(request)
        except ApiError as exc:
            return ended("failed", exc.code, exc.message, **learned)
        except Exception as exc:  # the batch's own check of the request (SidecarError)
            code = getattr(exc, "code", "invalid_request")
            return ended("failed", code, getattr(exc, "message", str(exc)), **learned)
        seed = request.seed if request.seed is not None else derive_seed(request)
        height, width = pixels.shape[:2]
        run_input = RunInput(request=request, seed=seed, pixels=pixels, size=(width, height))
        try:
            result = np.ascontiguousarray(self.engine.run(run_input, Steps()))
        except Exception as exc:
            error = engine_failure(exc)
            return ended("failed", error.code, error.message, **learned)
        write = ClaimedWrite(order.run, order.attempt, item.source)
        try:
            encoded = encode_file(result, files.result_format(item.target))
            del result
            files.write(item.target, encoded, item.source, write)
        except (OSError, ValueError) as exc:
            return ended("failed", "write_failed", str(exc), **learned)
        except MemoryError:
            return ended("failed", "out_of_memory", "not enough memory to write it", **learned)
        return ended("done", written=bool(write.replaced), **learned)
