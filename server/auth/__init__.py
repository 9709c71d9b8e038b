"""Authentication and authorisation of gRPC callers."""
