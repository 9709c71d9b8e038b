from tests.signing.sign.fixtures import artifacts, doc_pki, font, trust, tsa

__all__ = ["artifacts", "doc_pki", "font", "trust", "tsa"]
