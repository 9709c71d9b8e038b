"""The vnegov reference server: gRPC and HTTP adapters over the vnid, signing and payments
libraries, with storage, configuration, authentication and the audit log."""
