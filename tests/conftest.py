from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from helpers import closing_fixture

from sidecar.cli import build_app
from sidecar.settings import Settings

# The diffusion engine's tests need the diffusion extra (torch, diffusers), which is not
# installed where torch has no wheels at its pin (Intel Macs; see docs/platforms.md).
collect_ignore = []
if importlib.util.find_spec("torch") is None:
    collect_ignore += [
        "test_diffusion_engine.py",
        "test_diffusion_latent.py",
        "test_diffusion_loading.py",
    ]


def pytest_collection_modifyitems(config, items):
    """Tests marked linux_only read /proc or signal a child the POSIX way: elsewhere they
    are skipped, saying why; the rest run anywhere."""
    if sys.platform.startswith("linux"):
        return
    skip = pytest.mark.skip(reason="needs Linux facilities (/proc, POSIX signals)")
    for item in items:
        if "linux_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    """No test ever touches the user's real cache, config or data folders."""
    for name in ("cache", "config", "data"):
        monkeypatch.setenv(f"RETOUCH_{name.upper()}_DIR", str(tmp_path / f"env-{name}"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", config_dir=tmp_path / "config", port=0)


@pytest.fixture
def app(settings):
    return build_app(settings)


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app)


@pytest.fixture
def token(settings, app) -> str:
    return settings.token_path.read_text().strip()


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _retouch_engine():
    """A retouch engine on a fresh stage cache, shared by the module's tests."""
    from retouch_support import new_engine

    return new_engine()


def _face_finder():
    """A face finder (one face at most), shared by the module's tests."""
    from sidecar.stages.face_mesh import FaceFinder

    return FaceFinder()


engine = closing_fixture(_retouch_engine)
finder = closing_fixture(_face_finder)


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """The bundled sample portrait (512×512 RGB, 8 bit)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def portrait16(portrait) -> np.ndarray:
    """A 16-bit version with values that use the low byte too."""
    rng = np.random.default_rng(7)
    return (portrait.astype(np.uint16) * 257) ^ rng.integers(0, 256, portrait.shape, np.uint16)
