from tests.signing.sign.fixtures import artifacts, doc_pki, font, nssdb, trust, tsa

__all__ = ["artifacts", "doc_pki", "font", "nssdb", "trust", "tsa"]
