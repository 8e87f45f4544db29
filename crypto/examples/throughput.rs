//! Seal/open throughput for 64 KiB content chunks on one core.
//!
//! Run with `cargo run --release -p oxidrive-crypto --example throughput`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxidrive_crypto::content::{CHUNK_SIZE, ContentHeader, open_chunk, seal_chunk};
use oxidrive_crypto::keys::MasterKey;
use oxidrive_crypto::rng::RandomSource;
use ring::rand::SystemRandom;

const RUN_FOR: Duration = Duration::from_secs(2);

fn main() -> Result<(), oxidrive_crypto::Error> {
    let rng = SystemRandom::new();
    let master = MasterKey::generate(&rng)?;
    let (header, key) = ContentHeader::new(&master, b"", &rng)?;
    let id = header.file_id();
    let mut plain = vec![0u8; CHUNK_SIZE as usize];
    rng.fill(&mut plain)?;

    let (n, t) = measure(|i| {
        black_box(seal_chunk(&key, &id, i, false, &plain, &rng)?);
        Ok(())
    })?;
    report("seal", n, t);

    let sealed = seal_chunk(&key, &id, 0, false, &plain, &rng)?;
    let (n, t) = measure(|_| {
        black_box(open_chunk(&key, &id, 0, false, &sealed)?);
        Ok(())
    })?;
    report("open", n, t);
    Ok(())
}

fn measure(
    mut op: impl FnMut(u64) -> Result<(), oxidrive_crypto::Error>,
) -> Result<(u64, Duration), oxidrive_crypto::Error> {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN_FOR {
        for _ in 0..64 {
            op(n)?;
            n += 1;
        }
    }
    Ok((n, start.elapsed()))
}

fn report(what: &str, chunks: u64, took: Duration) {
    let mb = (chunks * CHUNK_SIZE) as f64 / 1e6;
    println!(
        "{what}: {chunks} chunks of 64 KiB in {:.2} s = {:.0} MB/s",
        took.as_secs_f64(),
        mb / took.as_secs_f64()
    );
}
