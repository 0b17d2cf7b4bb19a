"""The registry's Ed25519 key: it signs the audit chain's head so a regulator can check a downloaded feed without
trusting the server (or anyone who can write to its database: without the private key, a rewritten chain cannot carry
a valid signature). The private key lives in a file the service reads (mode 0600, created on first start); only the
public key is published (GET /api/v1/audit/public-key)."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuat.canonical import canonical
from serverkit.errors import InvalidInput
from serverkit.timeutil import utc

REGISTRY_ID = "kuat-national-hsc-registry"


def head_payload(seq: int, head_hash: str, signed_at: datetime) -> bytes:
    """What is signed: the registry's id, the head's seq and hash, and when (canonical JSON, UTF-8)."""
    return canonical({"registry": REGISTRY_ID, "seq": seq, "hash": head_hash,
                      "signed_at": utc(signed_at).isoformat()}).encode()


class Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """Load the key, or create it (0600) when the file does not exist yet."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise InvalidInput("signing_key_file", f"{path} holds no Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return cls(key)

    def public_pem(self) -> str:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign_head(self, seq: int, head_hash: str, signed_at: datetime) -> dict[str, Any]:
        signature = self._key.sign(head_payload(seq, head_hash, signed_at))
        return {"type": "head", "registry": REGISTRY_ID, "seq": seq, "hash": head_hash,
                "signed_at": utc(signed_at).isoformat(), "signature": base64.b64encode(signature).decode()}


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public_key", "not an Ed25519 public key")
    return key


def signature_valid(public_key: Ed25519PublicKey, head: dict[str, Any]) -> bool:
    try:
        payload = head_payload(int(head["seq"]), str(head["hash"]), datetime.fromisoformat(str(head["signed_at"])))
        public_key.verify(base64.b64decode(str(head["signature"])), payload)
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True
