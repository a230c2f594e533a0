"""The optional payload codec: AES-GCM over every payload Temporal stores.

Tokens travel in activity inputs and results, so with personal data in tokens Temporal's
history holds personal data. With the `payload_key` setting, the client and every worker
encrypt each payload before it leaves the process (and failure messages with it), so the
history, the web UI and `temporal workflow show` see only ciphertext. The mirror is not
encrypted: it is your database, read by SQL reports.

Each payload names the key it was encrypted with (a fingerprint, not the key), so a worker
with another key says so instead of failing obscurely.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from .errors import WorkflowableError
from .settings import Settings
from .workflows.payloads import MessagePayloadConverter

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class InvalidPayloadKey(WorkflowableError):
    """The payload_key setting is not a usable AES key, or does not match a payload's key."""


class EncryptionCodec(PayloadCodec):
    """Encrypt each payload whole (metadata and data) with AES-GCM and a fresh random nonce."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise InvalidPayloadKey(f"WORKFLOWABLE_PAYLOAD_KEY must decode to 16, 24 or 32 bytes, not {len(key)}")
        self._aes = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = nonce + self._aes.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()}, data=sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was turned on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            if key_id != self.key_id:
                raise InvalidPayloadKey(f"a payload was encrypted with key {key_id!r}; this process has key {self.key_id!r}")
            try:
                plain = self._aes.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
            except InvalidTag:
                raise InvalidPayloadKey(f"a payload marked with key {key_id!r} does not decrypt: it was altered") from None
            decoded.append(Payload.FromString(plain))
        return decoded


def codec_from(settings: Settings) -> EncryptionCodec | None:
    """The codec the settings ask for, or None without a payload_key."""
    if settings.payload_key is None:
        return None
    try:
        key = base64.b64decode(settings.payload_key.get_secret_value(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayloadKey("WORKFLOWABLE_PAYLOAD_KEY is not base64 (make one with: openssl rand -base64 32)") from None
    return EncryptionCodec(key)


#: Temporal's default converter, with our messages' faster, readable JSON (payloads.py).
DATA_CONVERTER = DataConverter(payload_converter_class=MessagePayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """Our converter, with the codec (and encrypted failure messages) if configured."""
    codec = codec_from(settings)
    if codec is None:
        return DATA_CONVERTER
    return dataclasses.replace(DATA_CONVERTER, payload_codec=codec, failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
