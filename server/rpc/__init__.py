"""gRPC side of the server: interceptors, per-method authorization rules, shared helpers and the
servicers (which only convert between protobuf messages and library objects)."""
