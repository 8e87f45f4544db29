//! Shared test helpers: a deterministic random source and fixed keys.
#![allow(dead_code)]

use std::sync::Mutex;

use oxidrive_crypto::keys::MasterKey;
use oxidrive_crypto::rng::RandomSource;
use ring::digest;

/// Deterministic "random" bytes: SHA-256(label || counter as u64 BE) blocks, in order.
/// Frozen vectors depend on this exact stream; do not change it.
pub struct TestRandom {
    label: Vec<u8>,
    state: Mutex<(u64, Vec<u8>)>,
}

impl TestRandom {
    pub fn new(label: &str) -> Self {
        TestRandom {
            label: label.as_bytes().to_vec(),
            state: Mutex::new((0, Vec::new())),
        }
    }
}

impl RandomSource for TestRandom {
    fn fill(&self, dest: &mut [u8]) -> oxidrive_crypto::Result<()> {
        let mut state = self.state.lock().unwrap();
        while state.1.len() < dest.len() {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(&self.label);
            ctx.update(&state.0.to_be_bytes());
            let block = ctx.finish();
            state.0 += 1;
            state.1.extend_from_slice(block.as_ref());
        }
        let rest = state.1.split_off(dest.len());
        dest.copy_from_slice(&state.1);
        state.1 = rest;
        Ok(())
    }
}

/// The fixed master key of the frozen vectors: bytes 0x00, 0x01, ..., 0x1f.
pub fn fixed_master() -> MasterKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    MasterKey::from_bytes(bytes)
}

/// A deterministic plaintext of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
