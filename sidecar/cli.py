"""The command line and composition root: the one place concrete pieces are wired."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .blas import blas_on_one_thread
from .deferred import defer_unused
from .heap import keep_freed_memory
from .settings import LOOPBACK, Settings

log = logging.getLogger("sidecar")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE_BYTES = 5 << 20  # then sidecar.log.1, .2, .3
LOG_FILE_BACKUPS = 3


DEFAULT_ENGINES = ("retouch",)


def build_app(settings: Settings, *, engines: Sequence[str] = DEFAULT_ENGINES):
    """The real application for these settings (used by `serve` and by the tests); in
    the program's own process, its engines are warmed as it starts."""
    from .api import create_app
    from .cache import ImageStore
    from .jobs import JobStore
    from .token import load_or_create_token

    token = load_or_create_token(settings.token_path)
    return create_app(
        settings,
        token=token,
        images_store=ImageStore(settings.images_dir, max_bytes=settings.store_max_bytes),
        job_store=JobStore(settings.jobs_db),
        engines=_engines(engines, settings),
        warm_engines=_program,
    )


def _engines(names: Sequence[str], settings: Settings) -> dict:
    """Op → engine for the engines named (later ones win for an op). With a model
    configured, the diffusion engine takes `generate` and the retouch ops (it runs the
    classical op itself and refines on request)."""
    from .cache.disk import DiskTier
    from .cache.stages import StageCache

    disk = None
    if settings.stage_disk_bytes:
        disk = DiskTier(settings.stages_dir, settings.stage_disk_bytes)
    cache = StageCache(settings.stage_memory_bytes, disk)
    table: dict = {}
    for name in names:
        if name == "synthetic":
            from .engines.synthetic import SyntheticEngine

            engine = SyntheticEngine()
        elif name == "retouch":
            from .engines.retouch import RetouchEngine

            engine = RetouchEngine(cache)
            if settings.model is not None:
                engine = _diffusion(settings, engine, cache)
        else:
            raise ValueError(f"unknown engine {name!r}")
        table.update(dict.fromkeys(engine.ops, engine))
    return table


def _diffusion(settings: Settings, retouch, cache):
    """The only place torch and diffusers get imported (and only with --model)."""
    try:
        from .engines.diffusion.engine import DiffusionEngine
        from .engines.diffusion.loading import load_model
    except ImportError as exc:
        raise ValueError(
            f"--model needs the diffusion extra ({exc.name} is missing): "
            "pip install -e .[diffusion] (torch has no Intel Mac wheels at its pin)"
        ) from exc

    assert settings.model is not None
    model = load_model(
        settings.model,
        device=settings.device,
        loras=settings.loras or None,
        single_file_config=settings.model_config_dir,
    )
    log.info("diffusion model: %s", model.describe())
    return DiffusionEngine(model, retouch, cache)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retouch-sidecar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the sidecar on 127.0.0.1")
    serve.add_argument("--port", type=int, help="TCP port (default 7431, env RETOUCH_PORT)")
    serve.add_argument("--cache-dir", type=Path, help="cache folder (env RETOUCH_CACHE_DIR)")
    serve.add_argument("--config-dir", type=Path, help="config folder (env RETOUCH_CONFIG_DIR)")
    serve.add_argument("--data-dir", type=Path, help="queued work (env RETOUCH_DATA_DIR)")
    serve.add_argument("--model", type=Path, help="diffusers folder or .safetensors file")
    serve.add_argument(
        "--model-config",
        dest="model_config_dir",
        type=Path,
        help="config folder for a single-file --model (env RETOUCH_MODEL_CONFIG_DIR)",
    )
    serve.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    serve.add_argument(
        "--store-max-bytes",
        type=int,
        metavar="N",
        help="disk for stored uploads and results, least recently used removed beyond it "
        "(env RETOUCH_STORE_MAX_BYTES; default a quarter of the free disk where the store "
        "lives, at least 2 GiB, at most 50 GiB, worked out at start)",
    )
    serve.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="OP=FILE",
        type=_lora_arg,
        help="a LoRA .safetensors for one retouch op, e.g. beauty=skin.safetensors (repeatable)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    serve.add_argument(
        "--log-file",
        type=Path,
        help="also log to this file, rotated at 5 MB (3 kept); its folder is created",
    )
    serve.add_argument(
        "--engine",
        action="append",
        default=[],
        choices=["synthetic"],
        help="add an engine after the classical retouch engine (later ones take over its "
        "ops): 'synthetic' runs N timed steps per job (scheduler testing)",
    )

    token = sub.add_parser("token", help="print the bearer token (created on first use)")
    token.add_argument("--config-dir", type=Path, help="config folder (env RETOUCH_CONFIG_DIR)")

    apply = sub.add_parser("apply", help="retouch one image file")
    apply.add_argument("input", type=Path, metavar="IN")
    apply.add_argument("output", type=Path, metavar="OUT")
    batch = sub.add_parser("batch", help="retouch every image file in a folder")
    batch.add_argument("in_dir", type=Path, metavar="IN_DIR")
    batch.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    batch.add_argument(
        "--hero", action="append", default=[], metavar="FILE", help="do this file first"
    )
    batch.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on a Ray cluster (the cluster extra) instead of a sidecar: auto (the "
        "running one), local[N] (started here with N workers) or HOST:PORT (its head); "
        "IN_DIR and OUT_DIR on a folder every node sees (docs/scale.md)",
    )
    batch.add_argument(
        "--worker-cpus",
        type=int,
        default=1,
        metavar="N",
        help="with --cluster: CPUs per worker (one worker per GPU where there are GPUs, "
        "else one per N CPUs; default 1)",
    )
    for command in (apply, batch):
        command.add_argument("--op", required=True, help="beauty, dodge_burn, volume or color")
        command.add_argument("--intensity", type=float, default=1.0, help="0..1 (default 1)")
        command.add_argument(
            "--param", action="append", default=[], metavar="KEY=VALUE", help="an op param"
        )
        command.add_argument(
            "--port", type=int, help="sidecar port; one is started here if none answers"
        )
        command.add_argument("--config-dir", type=Path, help="where the token is kept")

    from .service import add_parser as add_service

    add_service(sub)
    _add_cache(sub)
    return parser


def _add_cache(sub) -> None:
    """`cache info | clear`: the image store (uploads and results) in the cache folder."""
    cache = sub.add_parser(
        "cache",
        help="show or clear the stored images (uploads and results)",
        description="info: the store's folder, bytes used, limit and image count. clear: "
        "remove every stored upload and result; refused while a sidecar answers on the "
        "port (stop it first), since its jobs may need them. Stage files stay.",
    )
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--cache-dir", type=Path, help="cache folder (env RETOUCH_CACHE_DIR)")
    cache.add_argument(
        "--port", type=int, help="the sidecar's port (default 7431, env RETOUCH_PORT)"
    )
    cache.add_argument(
        "--store-max-bytes",
        type=int,
        metavar="N",
        help="the limit to show, as for serve (env RETOUCH_STORE_MAX_BYTES)",
    )


def _lora_arg(text: str) -> tuple[str, str]:
    op, sep, path = text.partition("=")
    ops = ("beauty", "dodge_burn", "volume", "color")
    if not sep or op not in ops or not path:
        raise argparse.ArgumentTypeError(f"expected OP=FILE with OP one of {', '.join(ops)}")
    return op, path


def _settings(args: argparse.Namespace) -> Settings:
    flags = (
        "port",
        "cache_dir",
        "config_dir",
        "data_dir",
        "model",
        "model_config_dir",
        "device",
        "store_max_bytes",
    )
    overrides = {
        name: getattr(args, name) for name in flags if getattr(args, name, None) is not None
    }
    loras = dict(getattr(args, "lora", []))
    if loras:
        overrides["loras"] = loras
    return Settings(**overrides)  # init values win over RETOUCH_* env, which win over defaults


def run() -> None:
    """The program: `main`, then out. After a file command that ran here to its end
    (every output written and synced, the sidecar it started stopped), the process ends
    at once rather than tearing down mediapipe's graphs and every loaded module one by
    one, which took 0.4-0.5 s after the last image; anything else exits as usual."""
    global _program
    _program = True
    code = main()
    if _quick_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


_program = False  # `main` runs as the program (`run`), not called from other code
_quick_exit = False  # set by `main` for `apply` and `batch` off a cluster


def _tune_process(*, one_image_after_another: bool) -> None:
    """The process's own settings for engine work, only when it is the program's own
    process (a test calling `main` keeps its process as it is)."""
    if not _program:
        return
    if one_image_after_another:  # the next image reuses the last one's memory
        keep_freed_memory()
    blas_on_one_thread()
    defer_unused()  # what mediapipe imports for plots and sound, never used here


def main(argv: Sequence[str] | None = None) -> int:
    global _quick_exit
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            print(f"retouch-sidecar: bad setting {where}: {error['msg']}", file=sys.stderr)
        return 2
    if args.command == "token":
        from .token import load_or_create_token

        print(load_or_create_token(settings.token_path))
        return 0
    if args.command in ("apply", "batch"):
        from .batch import run_command

        _tune_process(one_image_after_another=args.command == "batch")
        code = run_command(args, settings, lambda: build_app(settings))
        # off a cluster (Ray stops its workers at exit), the process may end at once
        _quick_exit = _program and getattr(args, "cluster", None) is None
        return code
    if args.command == "service":
        from .service import run_service

        return run_service(args, settings.port)
    if args.command == "cache":
        from .cache_command import run_cache

        return run_cache(args, settings)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, handlers=log_handlers(args))
    _tune_process(one_image_after_another=False)
    try:
        return _serve(settings, [*DEFAULT_ENGINES, *args.engine])
    except ValueError as exc:  # a model or LoRA that cannot be loaded, said plainly
        print(f"retouch-sidecar: {exc}", file=sys.stderr)
        return 2


def log_handlers(args: argparse.Namespace) -> list[logging.Handler]:
    """stderr (when there is one: not under pythonw) and, with --log-file, a rotated file."""
    handlers: list[logging.Handler] = []
    if sys.stderr is not None:
        handlers.append(logging.StreamHandler())
    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                args.log_file,
                maxBytes=LOG_FILE_BYTES,
                backupCount=LOG_FILE_BACKUPS,
                encoding="utf-8",
            )
        )
    return handlers


def _serve(settings: Settings, engines: Sequence[str]) -> int:
    from .api import AccessLogger
    from .api.protocol import run_app

    app = build_app(settings, engines=engines)
    log.info(
        "retouch-sidecar %s on http://%s:%d (token: `retouch-sidecar token`)",
        __version__,
        LOOPBACK,
        settings.port,
    )
    log.info("browser panel: http://%s:%d/panel/", LOOPBACK, settings.port)
    try:
        run_app(
            app,
            host=LOOPBACK,
            port=settings.port,
            access_log_class=AccessLogger,
            shutdown_timeout=10,
        )
    except OSError as exc:  # e.g. the port is in use; said in the log file too
        log.error("cannot serve on %s:%d: %s", LOOPBACK, settings.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
