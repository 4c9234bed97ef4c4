"""`atom render node NAME` / `atom render service NAME`: the YAML the Kubernetes adapter would apply.

Printed as it is (no colour, no wrapping), so `atom render node train > train.yaml` or
`atom render node train | kubectl apply -f -` work; the token's Secret carries a placeholder.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from control.cli.services import find_service

if TYPE_CHECKING:
    import argparse

    from control.cli._context import Context


async def cmd_render(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        if args.what == "node":
            out = await client.render_node(ctx.space, args.name)
        else:
            service = await find_service(client, ctx.space, args.name)
            out = await client.render_service(service.id)
    sys.stdout.write(out["yaml"])
    sys.stdout.flush()
    return 0
