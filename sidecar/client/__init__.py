"""A typed client of the sidecar's API (docs/api.md), the one Python client there is:
the `apply` and `batch` commands, the benchmarks and the tests use it.

- `SidecarClient` (http.py): the HTTP routes and the event stream (websocket.py),
  requests and answers as the pydantic models of `sidecar.schema`; every error is a
  `SidecarError` carrying the sidecar's stable code (errors.py).
- `JobTracker` (tracker.py): jobs followed to their end, with reconnection, resync
  after it, and each job ended once.
- `FakeSidecar` (fake.py): the same interface (`SidecarApi`, contract.py) in memory,
  its events scripted by the test.
- `connect` (in_process.py): the running sidecar, or one started in this process.

Only this room and `sidecar.api` import aiohttp; the fake, the tracker, the messages
and the errors do not.
"""

from .contract import EventStream, SidecarApi
from .errors import BAD_RESPONSE, CONNECTION_FAILED, SidecarError
from .fake import FakeEventStream, FakeSidecar
from .http import RAW_HEADER_NAMES, SidecarClient, raw_pixel_headers
from .in_process import connect, serve_in_process
from .messages import CancelAccepted, Reply, SocketError, SocketMessage, Subscribed
from .tracker import JobEnd, JobTracker

__all__ = [
    "BAD_RESPONSE",
    "CONNECTION_FAILED",
    "RAW_HEADER_NAMES",
    "CancelAccepted",
    "EventStream",
    "FakeEventStream",
    "FakeSidecar",
    "JobEnd",
    "JobTracker",
    "Reply",
    "SidecarApi",
    "SidecarClient",
    "SidecarError",
    "SocketError",
    "SocketMessage",
    "Subscribed",
    "connect",
    "raw_pixel_headers",
    "serve_in_process",
]
