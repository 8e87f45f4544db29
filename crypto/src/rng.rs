//! Injectable randomness.
//!
//! `ring::rand::SecureRandom` is sealed, so tests could not supply fixed bytes through
//! it; this one-method trait can be implemented anywhere.

use crate::{Error, Result};

/// A source of cryptographically secure random bytes.
pub trait RandomSource {
    /// Fills `dest` entirely with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<()>;
}

impl RandomSource for ring::rand::SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        ring::rand::SecureRandom::fill(self, dest).map_err(|_| Error::Random)
    }
}

/// Draws a fixed-size array from `rng`.
pub(crate) fn random_array<const N: usize>(rng: &dyn RandomSource) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    rng.fill(&mut out)?;
    Ok(out)
}
