//! Reading a file too big for the read cache (over half its limit): it streams past the
//! cache, and sequential reads are served from parts fetched ahead in memory instead of
//! one provider request per kernel read. Driven without FUSE (`oxidrive_tests::direct`)
//! over a real moto_server on 127.0.0.1; an OpenDAL layer counts the GETs that reach it.

use std::ffi::OsStr;

use oxidrive_tests::direct::{Direct, Storage};
use oxidrive_tests::pattern;
use oxidrive_vfs::OpenMode;

const MIB: usize = 1024 * 1024;
const SIZE: usize = 40 * MIB + 12_345;
/// The kernel's usual read size.
const READ: usize = 128 * 1024;
const RO: OpenMode = OpenMode { write: false, truncate: false };

async fn big_file(encrypt: bool) -> (Direct, u64, Vec<u8>) {
    // A 4 MiB cache: the 40 MiB file is more than half of it.
    let d = Direct::with_cache_limit(Storage::S3, encrypt, 4 * MIB as u64).await;
    let data = pattern(SIZE, 3);
    d.other.write_all("big.bin", data.clone()).await.unwrap();
    let attr = d.vfs.lookup(d.root, OsStr::new("big.bin")).await.unwrap();
    assert_eq!(attr.size, SIZE as u64);
    d.take_reads();
    (d, attr.ino, data)
}

async fn stream_whole_file(encrypt: bool) {
    let (d, ino, data) = big_file(encrypt).await;
    let fh = d.vfs.open(ino, RO).await.unwrap();
    let mut got = Vec::with_capacity(SIZE);
    let mut offset = 0;
    while offset < SIZE {
        // Two reads at a time, the second one first, as the kernel's read-ahead may
        // deliver them: both still continue the stream.
        let second = d.vfs.read(fh, (offset + READ) as u64, READ as u32).await.unwrap();
        let first = d.vfs.read(fh, offset as u64, READ as u32).await.unwrap();
        got.extend_from_slice(&first);
        got.extend_from_slice(&second);
        offset += 2 * READ;
    }
    assert_eq!(got.len(), SIZE);
    assert!(got == data, "the streamed bytes differ from the file");
    let gets = d.take_reads();
    // One GET per kernel read would be 321; the window's parts grow to 8 MiB.
    assert!(gets <= 20, "{gets} GETs to stream {SIZE} bytes");
    eprintln!("encrypt={encrypt}: {gets} GETs for {} reads", SIZE.div_ceil(READ));

    // A seek away from the window reads just what was asked, right.
    let at = 7 * MIB + 99;
    assert!(d.vfs.read(fh, at as u64, 4096).await.unwrap() == data[at..at + 4096]);
    assert_eq!(d.take_reads(), 1);
    // Reading on from there starts a new stream.
    for i in 0..16 {
        let off = at + 4096 + i * READ;
        assert!(d.vfs.read(fh, off as u64, READ as u32).await.unwrap() == data[off..off + READ], "read {i}");
    }
    assert!(d.take_reads() <= 6);
    d.vfs.release(fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_plain_big_file_streams_in_parts() {
    stream_whole_file(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_encrypted_big_file_streams_in_parts() {
    stream_whole_file(true).await;
}

/// A change of the file (another version) is never answered from the old stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_starts_a_new_stream() {
    let (d, ino, data) = big_file(false).await;
    let fh = d.vfs.open(ino, RO).await.unwrap();
    assert!(d.vfs.read(fh, 0, READ as u32).await.unwrap() == data[..READ]);
    d.vfs.release(fh).await.unwrap();
    // A version is (size, mtime), and S3 keeps mtimes in whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let changed = pattern(SIZE, 4);
    d.other.write_all("big.bin", changed.clone()).await.unwrap();
    // Seen by this device as a poll or a later stat would see it.
    d.store.poll().await.unwrap();
    let attr = d.vfs.lookup(d.root, OsStr::new("big.bin")).await.unwrap();
    let fh = d.vfs.open(attr.ino, RO).await.unwrap();
    assert!(d.vfs.read(fh, READ as u64, READ as u32).await.unwrap() == changed[READ..2 * READ]);
    d.vfs.release(fh).await.unwrap();
}
