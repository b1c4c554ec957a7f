from __future__ import annotations

import numpy as np
import pytest

from sidecar.cli import build_app
from sidecar.settings import Settings


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
