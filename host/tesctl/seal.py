"""Encryption for blinded studies, all of it NaCl (PyNaCl); no construction of our own.

- Sealed boxes (X25519 + XSalsa20-Poly1305, anonymous sender) to the study's public key:
  what only the unblinded study manager, holding the private key, can read (the sealed
  session records, the allocation table).
- A secret box (XSalsa20-Poly1305) under the study's run key: the participant's arm, which
  `run --study` must read on the operator's machine (docs/study.md, "Threat model").

Every plaintext is padded to a size the caller chooses from arm-independent figures
before it is encrypted, so the size of a ciphertext says nothing about its content.
"""
import base64

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random as random_bytes

from tesctl.errors import InputError

LEN_BYTES = 8         # the true length, before the zero padding


class SealError(InputError):
    """A key that does not fit, or a ciphertext that does not open (exit 2)."""


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text, what):
    try:
        return base64.b64decode(str(text).strip(), validate=True)
    except (ValueError, TypeError):
        raise SealError("%s is not base64" % what) from None


def new_keypair():
    """(private, public) as base64 text."""
    k = PrivateKey.generate()
    return b64(bytes(k)), b64(bytes(k.public_key))


def new_run_key():
    return b64(random_bytes(SecretBox.KEY_SIZE))


def pad(data, size):
    """data with its length in front, zero-padded to exactly `size` bytes (a multiple of
    `size` when it does not fit: the caller's bound was exceeded)."""
    body = len(data).to_bytes(LEN_BYTES, "big") + bytes(data)
    blocks = max(1, -(-len(body) // size))
    return body + bytes(blocks * size - len(body))


def unpad(padded):
    n = int.from_bytes(padded[:LEN_BYTES], "big")
    if n > len(padded) - LEN_BYTES:
        raise SealError("the opened data is cut short")
    return padded[LEN_BYTES:LEN_BYTES + n]


def seal(data, public_b64, size):
    """Encrypt to the study's public key (anyone may; only the private key opens it)."""
    key = PublicKey(_key(public_b64, "the study public key"))
    return SealedBox(key).encrypt(pad(data, size))


def unseal(blob, private_b64):
    try:
        return unpad(SealedBox(PrivateKey(_key(private_b64, "the unblinding key"))).decrypt(bytes(blob)))
    except CryptoError:
        raise SealError("this key does not open the sealed data (another study's key?)") from None


def lock(data, run_key_b64, size):
    return SecretBox(_key(run_key_b64, "the run key")).encrypt(pad(data, size))


def unlock(blob, run_key_b64):
    try:
        return unpad(SecretBox(_key(run_key_b64, "the run key")).decrypt(bytes(blob)))
    except CryptoError:
        raise SealError("the run key does not open the participant's allocation (another study's run.key?)") \
            from None


def _key(text, what):
    raw = unb64(text, what)
    if len(raw) != 32:
        raise SealError("%s must be 32 bytes, got %d" % (what, len(raw)))
    return raw
