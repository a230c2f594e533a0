from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.client import TLSConfig

from workflowable import Settings, WorkflowableError
from workflowable.connection import tls_config


def test_plain_connections_use_no_tls():
    assert tls_config(Settings(_env_file=None)) is False


def test_an_api_key_implies_tls_and_stays_secret():
    settings = Settings(_env_file=None, temporal_api_key="key-123")
    assert settings.temporal_uses_tls
    assert isinstance(tls_config(settings), TLSConfig)
    assert "key-123" not in repr(settings)


def test_client_certificates_are_read(tmp_path):
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    ca.write_bytes(b"CA")
    config = tls_config(Settings(_env_file=None, temporal_tls_cert=cert, temporal_tls_key=key, temporal_tls_ca=ca, temporal_tls_server_name="t.example"))
    assert isinstance(config, TLSConfig)
    assert (config.client_cert, config.client_private_key, config.server_root_ca_cert, config.domain) == (b"CERT", b"KEY", b"CA", "t.example")


def test_a_certificate_needs_its_key(tmp_path):
    with pytest.raises(ValidationError, match="TLS_CERT and WORKFLOWABLE_TEMPORAL_TLS_KEY go together"):
        Settings(_env_file=None, temporal_tls_cert=tmp_path / "c.pem")


def test_a_missing_file_is_named(tmp_path):
    settings = Settings(_env_file=None, temporal_tls_cert=tmp_path / "nope.pem", temporal_tls_key=tmp_path / "k.pem")
    with pytest.raises(WorkflowableError, match=r"cannot read the TLS client certificate file .*nope\.pem"):
        tls_config(settings)
