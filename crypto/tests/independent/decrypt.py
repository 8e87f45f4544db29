"""A second decryptor, written from docs/format.md alone, checked against the frozen vectors.

It shares no code with the Rust crate (Python `cryptography` >= 44, which has Argon2id,
backed by OpenSSL), so agreement shows the format document is complete and the vectors
are standard primitives composed as documented. Not run by CI; run by hand after any
change to docs/format.md:

    python3 crypto/tests/independent/decrypt.py
"""
import os
import hashlib, hmac, re, base64, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

src = open(os.path.join(os.path.dirname(__file__), '..', 'vectors.rs')).read()
def const(name):
    body = src.split(f'const {name}: &[&str] = &[')[1].split('];')[0]
    return ''.join(re.findall(r'"([0-9a-z]+)"', body))

def hkdf(mk, info):
    return HKDF(hashes.SHA256(), 32, b'', info.encode()).derive(mk)

mk = bytes(range(32))
# Vault
vault_hex = ''.join(re.findall(r'"([0-9a-f]+)"', src.split('let expected = join(&[')[1].split(']);')[0]))
v = bytes.fromhex(vault_hex); assert len(v) == 94 and v[:4] == b'OXDV' and v[4] == 1 and v[5] == 1
m, t, p = (int.from_bytes(v[i:i+4], 'big') for i in (6, 10, 14))
kek = Argon2id(salt=v[18:34], length=32, iterations=t, lanes=p, memory_cost=m).derive(b'correct horse battery staple')
master = AESGCM(kek).decrypt(v[34:46], v[46:94], v[:46])
assert master.hex() == re.search(r'let master_hex = "([0-9a-f]+)"', src).group(1)
print('vault master', master.hex(), (m, t, p))

def plain_size(c):
    if c < 81: return None
    body = c - 81; full, rest = divmod(body, 65564)
    if rest == 0: return None if full == 0 else full * 65536
    if rest == 28 and full == 0: return 0
    if rest > 28: return full * 65536 + rest - 28
    return None

def decrypt_content(mk, ct):
    P = plain_size(len(ct)); assert P is not None
    assert ct[:4] == b'OXDC' and ct[4] == 1
    fid = ct[5:21]
    fk = AESGCM(hkdf(mk, 'oxidrive v1 content-key-wrap')).decrypt(ct[21:33], ct[33:81], ct[:21])
    n = max(1, -(-P // 65536)); out = b''
    for i in range(n):
        plen = min(65536, P - i * 65536)
        s = 81 + i * 65564; c = ct[s:s + 28 + plen]
        aad = fid + i.to_bytes(8, 'big') + (b'\x01' if i == n - 1 else b'\x00')
        out += AESGCM(fk).decrypt(c[:12], c[12:], aad)
    return out

assert decrypt_content(mk, bytes.fromhex(const('CONTENT_HELLO'))) == b'hello, oxidrive\n'
assert decrypt_content(mk, bytes.fromhex(const('CONTENT_EMPTY'))) == b''

def b32dec(s):
    pad = '=' * (-len(s) % 8)
    return base64.b32decode(s.upper() + pad)

def decrypt_name(mk, d, stored):
    sealed = b32dec(stored)
    nonce = sealed[:12]
    padded = AESGCM(hkdf(mk, 'oxidrive v1 name-siv-enc')).decrypt(nonce, sealed[12:], d)
    n = padded[:-padded[-1]]
    assert hmac.new(hkdf(mk, 'oxidrive v1 name-siv-mac'), d + n, 'sha256').digest()[:12] == nonce
    return n

root = re.search(r'let root = "([a-z2-7]+)"', src).group(1)
docs = re.search(r'let docs = "([a-z2-7]+)"', src).group(1)
assert decrypt_name(mk, bytes(16), root) == b'hello.txt'
assert decrypt_name(mk, bytes([0x11]) * 16, docs).decode() == 'Документы'
full = const('LONG_NAME_FULL')
short = re.search(r"\"(l-[a-z2-7]{52})\"", src).group(1)
assert short == 'l-' + base64.b32encode(hashlib.sha256(full.encode()).digest()).decode().lower().rstrip('=')
assert decrypt_name(mk, bytes([0x22]) * 16, full) == bytes(ord('a') + i % 26 for i in range(255))
blob = bytes.fromhex(re.search(r'let expected = "([0-9a-f]+)"', src).group(1))
assert AESGCM(hkdf(mk, 'oxidrive v1 metadata')).decrypt(blob[1:13], blob[13:], b'\x01symlink') == b'../target'
print('all vectors decrypt as documented')
