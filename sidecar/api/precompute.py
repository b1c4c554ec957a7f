"""Background precompute for the document in front: POST starts it (and stops it for
every other document), DELETE stops it when the document closes. What it readies (the
stages, the result, with a diffusion model the refine's VAE latent): jobs/precompute.py."""

from __future__ import annotations

from aiohttp import web

from ..errors import InvalidRequest
from ..schema import PrecomputeRequest, PrecomputeStarted
from .keys import SCHEDULER
from .responses import model_response
from .validation import json_body

routes = web.RouteTableDef()
MAX_DOCUMENT_ID = next(
    rule.max_length
    for rule in PrecomputeRequest.model_fields["document_id"].metadata
    if hasattr(rule, "max_length")
)


@routes.post("/v1/precompute")
async def start(request: web.Request) -> web.Response:
    body = await json_body(request, PrecomputeRequest)
    jobs, stopped = request.app[SCHEDULER].precompute(
        body.image_id, body.document_id, body.layer_stack_hash, body.ops
    )
    started = PrecomputeStarted(
        document_id=body.document_id, job_ids=[job.job_id for job in jobs], cancelled=stopped
    )
    return model_response(started, status=202)


@routes.delete("/v1/precompute/{document_id}")
async def stop(request: web.Request) -> web.Response:
    document_id = request.match_info["document_id"]
    if len(document_id) > MAX_DOCUMENT_ID:  # the same rule as in a request body
        raise InvalidRequest(
            f"document_id is longer than {MAX_DOCUMENT_ID} characters",
            details={"length": len(document_id)},
        )
    stopped = request.app[SCHEDULER].cancel_precompute(document_id)
    return model_response(PrecomputeStarted(document_id=document_id, job_ids=[], cancelled=stopped))
