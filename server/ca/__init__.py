"""The certificate authority's server side: gRPC servicer, HTTP endpoints (CRL, OCSP, TSA, CA
certificates), storage adapters, background workers and the bulk re-issuance runner."""
