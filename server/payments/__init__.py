"""The payments module of the server (see :mod:`server.payments.module`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.modules import AppContext, Module

__all__ = ["payments_module"]


def payments_module(ctx: AppContext) -> Module:
    from server.payments.module import build

    return build(ctx)
