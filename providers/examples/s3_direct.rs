//! An S3 store used directly through this crate's OpenDAL operator, without the mount:
//! the baseline `bench/s3.sh` compares the mount with.
//!
//! ```text
//! cargo run --release -p oxidrive-providers --example s3_direct -- ENDPOINT BUCKET CMD ARGS...
//!
//!   put-size KEY MIB   upload MIB MiB of zeros, streamed in 8 MiB parts (as uploads are)
//!   read KEY           read the object front to back in 8 MiB ranges (as downloads are)
//!   read-all KEY       read the whole object with one request
//!   fill PREFIX N      create N tiny objects PREFIX/f000000..., 32 requests at a time
//!   read-each PREFIX   read every object in the folder PREFIX whole, 8 at a time (as
//!                      `oxidrive pin` of a folder asks for its files)
//!   list PREFIX        list the folder PREFIX once
//! ```
//!
//! Keys are paths in the bucket, without a leading slash. Each command prints one line
//! of `name=value` pairs (`bytes=268435456 secs=1.234`); `secs` covers the transfer only,
//! not building the operator or the `stat` that finds an object's size. The operator
//! comes from `Backend::from_spec` with an `s3` spec, so it has the same layers (retry,
//! timeout, concurrency limit) and HTTP transport as the mount's. Credentials are
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when set, otherwise dummy ones (which
//! moto_server accepts).

use std::process::ExitCode;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use oxidrive_providers::{Backend, ProviderKind, ProviderSpec, Secret};

/// Upload and download piece size, the same as the crate's own uploads and downloads.
const PART: u64 = 8 << 20;
/// Requests in flight while filling a folder.
const FILL_CONCURRENCY: usize = 32;
/// Objects read at once by `read-each`: the files `oxidrive pin` has in flight.
const PIN_CONCURRENCY: usize = 8;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: s3_direct ENDPOINT BUCKET (put-size KEY MIB | read KEY | read-all KEY | fill PREFIX N | read-each PREFIX | list PREFIX)";

fn backend(endpoint: &str, bucket: &str, concurrency: Option<usize>) -> AnyResult<Backend> {
    let secret = |var: &str| Secret::Value(std::env::var(var).unwrap_or_else(|_| "oxidrive-bench".to_owned()));
    let spec = ProviderSpec {
        name: "s3_direct".to_owned(),
        kind: ProviderKind::S3 {
            bucket: bucket.to_owned(),
            endpoint: Some(endpoint.to_owned()),
            region: None,
            root: None,
            access_key_id: Some(secret("AWS_ACCESS_KEY_ID")),
            secret_access_key: Some(secret("AWS_SECRET_ACCESS_KEY")),
            virtual_host_style: false,
            concurrency,
            timeout_secs: None,
            retries: None,
        },
        shared: false,
        encrypt: false,
    };
    Ok(Backend::from_spec(&spec)?)
}

fn report(bytes: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    let mib_s = bytes as f64 / f64::from(1u32 << 20) / secs.max(1e-9);
    format!("bytes={bytes} secs={secs:.3} mib_s={mib_s:.1}")
}

async fn run(endpoint: &str, bucket: &str, cmd: &str, args: &[String]) -> AnyResult<String> {
    match (cmd, args) {
        ("put-size", [key, mib]) => {
            let total = mib.parse::<u64>()? << 20;
            let b = backend(endpoint, bucket, None)?;
            // Zeroed pieces, allocated as they are sent: memory stays at a few parts.
            let parts = futures::stream::iter((0..total).step_by(PART as usize))
                .map(move |off| Ok::<_, oxidrive_providers::Error>(vec![0u8; PART.min(total - off) as usize]));
            let started = Instant::now();
            b.write_parts(key, parts, &oxidrive_providers::Precondition::Any).await?;
            Ok(report(total, started))
        }
        ("read", [key]) => {
            let b = backend(endpoint, bucket, None)?;
            let size = b.stat(key).await?.ok_or_else(|| format!("{key}: no such object"))?.size;
            let started = Instant::now();
            let mut off = 0;
            while off < size {
                let data = b.read_range(key, off, PART.min(size - off)).await?;
                if data.is_empty() {
                    return Err(format!("{key}: ended at {off} of {size} bytes").into());
                }
                off += data.len() as u64;
            }
            Ok(report(off, started))
        }
        ("read-all", [key]) => {
            let b = backend(endpoint, bucket, None)?;
            let started = Instant::now();
            let data = b.read_all(key).await?;
            Ok(report(data.len() as u64, started))
        }
        ("fill", [prefix, n]) => {
            let n = n.parse::<u64>()?;
            let b = backend(endpoint, bucket, Some(FILL_CONCURRENCY))?;
            let started = Instant::now();
            futures::stream::iter((0..n).map(Ok))
                .try_for_each_concurrent(FILL_CONCURRENCY, |i| {
                    let b = &b;
                    async move { b.write_all(&format!("{prefix}/f{i:06}"), format!("{i}\n").into_bytes()).await }
                })
                .await?;
            Ok(format!("objects={n} secs={:.3}", started.elapsed().as_secs_f64()))
        }
        ("read-each", [prefix]) => {
            let b = backend(endpoint, bucket, None)?;
            let keys: Vec<String> =
                b.list(prefix).await?.into_iter().map(|(name, _)| format!("{prefix}/{name}")).collect();
            let started = Instant::now();
            let bytes: u64 = futures::stream::iter(keys.iter().map(|key| b.read_all(key)))
                .buffer_unordered(PIN_CONCURRENCY)
                .map_ok(|data| data.len() as u64)
                .try_fold(0, |sum, n| async move { Ok(sum + n) })
                .await?;
            Ok(format!("objects={} {}", keys.len(), report(bytes, started)))
        }
        ("list", [prefix]) => {
            let b = backend(endpoint, bucket, None)?;
            let started = Instant::now();
            let entries = b.list(prefix).await?;
            Ok(format!("entries={} secs={:.3}", entries.len(), started.elapsed().as_secs_f64()))
        }
        _ => Err(USAGE.into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, bucket, cmd, rest @ ..] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(endpoint, bucket, cmd, rest).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("s3_direct {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
