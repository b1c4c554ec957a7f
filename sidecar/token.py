"""The bearer token: created once, random, readable by the user alone."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_BYTES = 32  # 256 bits


def load_or_create_token(path: Path) -> str:
    """Return the token stored at `path`, creating it (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= 22:  # at least 128 bits of url-safe base64
        _restrict(path)
        return token
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if another process created the token first: keep theirs.
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create_token(path)
    finally:
        tmp.unlink(missing_ok=True)
    return token


def _restrict(path: Path) -> None:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an absent token never matches."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
