"""The HTTP front (ASGI): health and metrics now; OCSP, CRLs, the time-stamp authority, OpenID
provider pages and payment callbacks are mounted by their modules."""
