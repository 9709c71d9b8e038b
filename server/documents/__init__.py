"""The documents module of the server: signing and verifying official documents over gRPC."""
