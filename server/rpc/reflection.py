"""gRPC server reflection, both versions: ``grpc.reflection.v1`` (what current grpcurl, Postman,
Java's and .NET's reflection clients ask for first) and the older ``grpc.reflection.v1alpha``.

grpcio-reflection ships only v1alpha. The two versions are the same messages under another package
name (identical field numbers and types, so identical bytes on the wire), so v1 is served by the
same servicer: its file descriptor is v1alpha's with the package renamed, added to the default
pool so that reflection can describe itself, and its method is registered with v1alpha's
(de)serialisers.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE_NAME: str = v1alpha.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    old, new = "grpc.reflection.v1alpha", "grpc.reflection.v1"
    file.name, file.package = _V1_FILE, new
    file.options.Clear()
    file.options.java_package = "io.grpc.reflection.v1"
    file.options.java_outer_classname = "ServerReflectionProto"
    file.options.java_multiple_files = True
    file.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    for message in file.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{old}."):
                field.type_name = f".{new}." + field.type_name[len(old) + 2:]
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.Add(file)


# At import: the method rules (server.rpc.rules) look the service up in the default pool.
_add_v1_descriptor(descriptor_pool.Default())


def enable_server_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serve both reflection versions on ``server``; ``service_names`` lists every service to
    advertise, the two reflection services included."""
    servicer = v1alpha.aio.ReflectionServicer(service_names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        ),
    })
    server.add_generic_rpc_handlers((handler,))
