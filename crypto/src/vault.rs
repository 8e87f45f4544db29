//! The vault header: the master key wrapped under a passphrase.
//!
//! One vault object sits at the root of each encrypted provider. Its layout (all
//! integers big-endian, 94 bytes in total):
//!
//! ```text
//! magic "OXDV" (4) | version 1 (1) | kdf id 1 = Argon2id v1.3 (1)
//! | m_cost KiB u32 (4) | t_cost u32 (4) | parallelism u32 (4) | salt (16)
//! | nonce (12) | AES-256-GCM(master key) (32) | tag (16)
//! ```
//!
//! The wrapping key is Argon2id(passphrase, salt, params) and the AAD is every byte
//! before the ciphertext, so the parameters cannot be lowered without breaking the tag.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::aead;
use crate::keys::{KEY_LEN, MasterKey};
use crate::rng::{RandomSource, random_array};
use crate::{Error, Result};

/// Magic bytes at the start of a vault header.
pub const VAULT_MAGIC: [u8; 4] = *b"OXDV";
/// The vault format version this build writes and reads.
pub const VAULT_VERSION: u8 = 1;
/// KDF identifier for Argon2id version 0x13.
pub const KDF_ARGON2ID_V13: u8 = 1;
/// Length of the salt fed to Argon2id.
pub const SALT_LEN: usize = 16;
/// Length of the serialized vault header.
pub const VAULT_LEN: usize = AAD_LEN + KEY_LEN + aead::TAG_BYTES;
/// Name of the vault object at a provider's root.
pub const VAULT_OBJECT_NAME: &str = "oxidrive.vault";

const PARAMS_AT: usize = 6;
const SALT_AT: usize = PARAMS_AT + 12;
const NONCE_AT: usize = SALT_AT + SALT_LEN;
const AAD_LEN: usize = NONCE_AT + aead::NONCE_BYTES;

/// Argon2id cost parameters, stored in the vault so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// What `oxidrive init` uses: 64 MiB, 3 passes, 1 lane (0.2 s per unlock on a 2.8 GHz Xeon).
    pub const DEFAULT: KdfParams = KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, parallelism: 1 };

    /// The cheapest accepted parameters. For tests only: they offer no brute-force
    /// resistance.
    pub const INSECURE_TEST_ONLY: KdfParams = KdfParams { m_cost_kib: 8, t_cost: 1, parallelism: 1 };

    /// Upper bounds keep a hostile vault object from making unlock eat the machine.
    const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    const MAX_T_COST: u32 = 64;
    const MAX_PARALLELISM: u32 = 64;

    /// Checks the parameters are within what this build accepts.
    pub fn validate(&self) -> Result<()> {
        if !(1..=Self::MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(Error::KdfParams("parallelism must be 1..=64"));
        }
        if !(1..=Self::MAX_T_COST).contains(&self.t_cost) {
            return Err(Error::KdfParams("t_cost must be 1..=64"));
        }
        // Argon2 needs at least 8 KiB per lane.
        if self.m_cost_kib < 8 * self.parallelism || self.m_cost_kib > Self::MAX_M_COST_KIB {
            return Err(Error::KdfParams("m_cost must be at least 8 KiB per lane and at most 4 GiB"));
        }
        Ok(())
    }

    /// Derives the 32-byte wrapping key from a passphrase.
    fn derive(&self, passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()?;
        let params = Params::new(self.m_cost_kib, self.t_cost, self.parallelism, Some(32))
            .map_err(|_| Error::KdfParams("rejected by Argon2"))?;
        let mut out = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|_| Error::KdfParams("rejected by Argon2"))?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A parsed vault header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; aead::NONCE_BYTES],
    wrapped: [u8; KEY_LEN + aead::TAG_BYTES],
}

impl Vault {
    /// Creates a vault holding a fresh master key, returning both.
    pub fn create(passphrase: &[u8], params: KdfParams, rng: &dyn RandomSource) -> Result<(Vault, MasterKey)> {
        let master = MasterKey::generate(rng)?;
        let vault = Self::wrap(&master, passphrase, params, rng)?;
        Ok((vault, master))
    }

    /// Wraps an existing master key under `passphrase` with a fresh salt and nonce.
    pub fn wrap(master: &MasterKey, passphrase: &[u8], params: KdfParams, rng: &dyn RandomSource) -> Result<Vault> {
        params.validate()?;
        let salt: [u8; SALT_LEN] = random_array(rng)?;
        let nonce: [u8; aead::NONCE_BYTES] = random_array(rng)?;
        let aad = aad_bytes(&params, &salt, &nonce);
        let kek = aead::key(&*params.derive(passphrase, &salt)?)?;
        let sealed = aead::seal_with_nonce(&kek, nonce, &aad, master.expose_secret())?;
        let wrapped =
            sealed[aead::NONCE_BYTES..].try_into().map_err(|_| Error::Internal("wrapped master key length"))?;
        Ok(Vault { params, salt, nonce, wrapped })
    }

    /// Recovers the master key. Any failure to authenticate is `WrongPassphrase`.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let kek = aead::key(&*self.params.derive(passphrase, &self.salt)?)?;
        let aad = aad_bytes(&self.params, &self.salt, &self.nonce);
        let mut sealed = Vec::with_capacity(aead::NONCE_BYTES + self.wrapped.len());
        sealed.extend_from_slice(&self.nonce);
        sealed.extend_from_slice(&self.wrapped);
        let plain = Zeroizing::new(aead::open(&kek, &aad, &sealed, "vault").map_err(|_| Error::WrongPassphrase)?);
        let bytes: [u8; KEY_LEN] =
            plain.as_slice().try_into().map_err(|_| Error::Internal("unwrapped master key length"))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// For `oxidrive passwd`: the same master key under a new passphrase (and
    /// possibly new parameters). Contents and names stay valid.
    pub fn rewrap(
        &self,
        old_passphrase: &[u8],
        new_passphrase: &[u8],
        params: KdfParams,
        rng: &dyn RandomSource,
    ) -> Result<Vault> {
        let master = self.unlock(old_passphrase)?;
        Self::wrap(&master, new_passphrase, params, rng)
    }

    /// The Argon2id parameters this vault was written with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Serializes to the 94-byte on-provider form.
    pub fn to_bytes(&self) -> [u8; VAULT_LEN] {
        let mut out = [0u8; VAULT_LEN];
        out[..AAD_LEN].copy_from_slice(&aad_bytes(&self.params, &self.salt, &self.nonce));
        out[AAD_LEN..].copy_from_slice(&self.wrapped);
        out
    }

    /// Parses a vault header, rejecting anything but the exact version-1 layout.
    pub fn from_bytes(bytes: &[u8]) -> Result<Vault> {
        if bytes.len() < VAULT_MAGIC.len() || bytes[..4] != VAULT_MAGIC {
            return Err(Error::BadMagic("vault"));
        }
        let bytes: &[u8; VAULT_LEN] =
            bytes.try_into().map_err(|_| Error::BadLength { what: "vault", expected: VAULT_LEN, got: bytes.len() })?;
        if bytes[4] != VAULT_VERSION {
            return Err(Error::UnsupportedVersion { what: "vault", version: bytes[4] });
        }
        if bytes[5] != KDF_ARGON2ID_V13 {
            return Err(Error::KdfParams("unknown KDF identifier"));
        }
        let params = KdfParams {
            m_cost_kib: be_u32(bytes, PARAMS_AT),
            t_cost: be_u32(bytes, PARAMS_AT + 4),
            parallelism: be_u32(bytes, PARAMS_AT + 8),
        };
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[SALT_AT..NONCE_AT]);
        let mut nonce = [0u8; aead::NONCE_BYTES];
        nonce.copy_from_slice(&bytes[NONCE_AT..AAD_LEN]);
        let mut wrapped = [0u8; KEY_LEN + aead::TAG_BYTES];
        wrapped.copy_from_slice(&bytes[AAD_LEN..]);
        Ok(Vault { params, salt, nonce, wrapped })
    }
}

/// Every header byte before the ciphertext: both the serialized prefix and the AAD.
fn aad_bytes(params: &KdfParams, salt: &[u8; SALT_LEN], nonce: &[u8; aead::NONCE_BYTES]) -> [u8; AAD_LEN] {
    let mut out = [0u8; AAD_LEN];
    out[..4].copy_from_slice(&VAULT_MAGIC);
    out[4] = VAULT_VERSION;
    out[5] = KDF_ARGON2ID_V13;
    out[PARAMS_AT..PARAMS_AT + 4].copy_from_slice(&params.m_cost_kib.to_be_bytes());
    out[PARAMS_AT + 4..PARAMS_AT + 8].copy_from_slice(&params.t_cost.to_be_bytes());
    out[PARAMS_AT + 8..SALT_AT].copy_from_slice(&params.parallelism.to_be_bytes());
    out[SALT_AT..NONCE_AT].copy_from_slice(salt);
    out[NONCE_AT..].copy_from_slice(nonce);
    out
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
