"""The [documents] section: a signer's certification profile is a DocMDP permission or 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError
from server.documents.config import DocumentsConfig

SIGNER = {"name": "ubnd-hcm", "agency_code": "000.00.00.H29",
          "certificate_file": "pki/ubnd-hcm.pem", "key_file": "pki/ubnd-hcm.key"}


def test_certify_first_is_read_and_checked(tmp_path: Path) -> None:
    config = DocumentsConfig.from_config({"signers": [{**SIGNER, "certify_first": 2}]},
                                         base_dir=tmp_path)
    assert config.signers[0].certify_first == 2
    assert DocumentsConfig.from_config({"signers": [SIGNER]},
                                       base_dir=tmp_path).signers[0].certify_first == 0
    with pytest.raises(ConfigError) as caught:
        DocumentsConfig.from_config({"signers": [{**SIGNER, "certify_first": 4}]},
                                    base_dir=tmp_path)
    assert "certify_first" in str(caught.value)
