"""`POST /luma/tasks` is shared: AceData clients send an `action` (or one
`id`: retrieve, retrieve_batch, cancel), generations-gateway clients send
only `ids`. This route reads which one it got and hands the body to that
dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends

from reelgate.api import acedata, generations
from reelgate.api.context import ApiContext
from reelgate.domain.types import TokenInfo

T = TypeVar("T")


def _confirmed(
    action: Callable[[ApiContext, TokenInfo, T], dict[str, Any]],
    ctx: ApiContext,
    owner: TokenInfo,
    body: T,
) -> dict[str, Any]:
    """`action`, once the token `Authenticator.caller` handed over is
    confirmed live (actions other than a one-task retrieve)."""
    ctx.auth.confirm(owner)
    return action(ctx, owner, body)


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["AceData dialect", "generations dialect"])

    @router.post("/luma/tasks", summary="Retrieve or cancel tasks (AceData actions, or {ids})")
    async def luma_tasks(
        body: acedata.TasksRequest, owner: TokenInfo = Depends(ctx.auth.caller)
    ) -> dict[str, Any]:
        if body.action is None and body.id is None and body.ids is not None:
            return await run_sync(_confirmed, generations.tasks_by_ids, ctx, owner, body.ids)
        if acedata.retrieves_one(body):  # its query checks the token (api/auth.py)
            return await run_sync(acedata.task_action, ctx, owner, body)
        return await run_sync(_confirmed, acedata.task_action, ctx, owner, body)

    return router
