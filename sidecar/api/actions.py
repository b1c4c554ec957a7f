"""POST /v1/actions and GET /v1/predictions: learning what the user does next, and
starting the likely next action's inputs early."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..schema import ActionRecord, Model, Op
from .keys import PREDICTOR, SCHEDULER
from .responses import model_response
from .validation import json_body, query

routes = web.RouteTableDef()


class PredictionQuery(Model):
    """Query of GET /v1/predictions."""

    after: Op


@routes.post("/v1/actions")
async def record(request: web.Request) -> web.Response:
    body = await json_body(request, ActionRecord)
    predictor = request.app[PREDICTOR]
    # the model is saved on each change: keep the disk write off the event loop
    prediction = await asyncio.get_running_loop().run_in_executor(
        None, predictor.record, body.document_id, body.action
    )
    if prediction.next is not None and predictor.should_prefetch(prediction):
        # ready the likely next op's stages for this document, in the background
        request.app[SCHEDULER].prefetch(body.document_id, prediction.next)
    return model_response(prediction)


@routes.get("/v1/predictions")
async def predict(request: web.Request) -> web.Response:
    options = query(request.query, PredictionQuery)
    return model_response(request.app[PREDICTOR].predict(options.after))
