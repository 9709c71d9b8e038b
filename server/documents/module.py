"""The documents module: the ``SigningService`` over gRPC, configured by ``[documents]``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from server.documents.config import DocumentsConfig
from server.documents.runtime import DocumentsRuntime
from server.documents.service import SigningServicer
from server.modules import AppContext, GrpcService, Module
from vnegov.signing.v1 import documents_pb2_grpc

__all__ = ["DocumentsModule", "create_module"]


class DocumentsModule(Module):
    name = "documents"

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        section = ctx.config.extensions.get("documents", {})
        self.config = DocumentsConfig.from_config(section,
                                                  base_dir=Path(ctx.config.data_dir or "."))
        self.runtime = DocumentsRuntime.build(self.config)
        self._servicer = SigningServicer(ctx, self.runtime)

    def grpc_services(self) -> Sequence[GrpcService]:
        return [GrpcService("vnegov.signing.v1.SigningService", self._servicer,
                            documents_pb2_grpc.add_SigningServiceServicer_to_server)]

    async def stop(self) -> None:
        self.runtime.close()


def create_module(ctx: AppContext) -> Module:
    return DocumentsModule(ctx)
