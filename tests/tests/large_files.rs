//! Large files: kept in their own test binary so the gigabytes of I/O they cause do
//! not slow the mounts of other tests running alongside.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use oxidrive_tests::{TestMount, names, pattern};

fn sparse_five_gib_file_both_ends(m: TestMount) {
    const GIB: u64 = 1 << 30;
    const SIZE: u64 = 5 * GIB;
    let f = m.local().join("sparse.img");
    let head = pattern(4096, 1);
    let tail = pattern(4096, 2);
    let mid = b"4GiB"; // straddles 2^32: catches offsets truncated to 32 bits
    {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&f).unwrap();
        file.write_all_at(&head, 0).unwrap();
        file.write_all_at(&tail, SIZE - 4096).unwrap();
        file.write_all_at(mid, 4 * GIB - 2).unwrap();
        assert_eq!(file.metadata().unwrap().len(), SIZE);
        let mut buf = vec![0u8; 4096];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, head);
        file.read_exact_at(&mut buf, SIZE - 4096).unwrap();
        assert_eq!(buf, tail);
        file.sync_all().unwrap();
    }
    assert_eq!(fs::metadata(&f).unwrap().len(), SIZE);
    let check = |path: &Path, where_: &str| {
        let file = File::open(path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), SIZE, "{where_}: size");
        let mut buf = vec![0u8; 4096];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, head, "{where_}: head");
        file.read_exact_at(&mut buf, SIZE - 4096).unwrap();
        assert_eq!(buf, tail, "{where_}: tail");
        let mut four = [0u8; 8];
        file.read_exact_at(&mut four, 4 * GIB - 4).unwrap();
        assert_eq!(&four, b"\0\x004GiB\0\0", "{where_}: around 4 GiB");
        file.read_exact_at(&mut buf, 2 * GIB + 12345).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "{where_}: the hole reads as zeros");
        // Reading at the very end gives the last bytes, then EOF.
        let mut end = vec![0u8; 10_000];
        let n = file.read_at(&mut end, SIZE - 100).unwrap();
        assert_eq!(n, 100, "{where_}: short read at EOF");
        assert_eq!(&end[..100], &tail[4096 - 100..]);
        assert_eq!(file.read_at(&mut end, SIZE).unwrap(), 0, "{where_}: read at EOF");
    };
    check(&f, "mount after close");
    if let Some(b) = m.plain_backing() {
        check(&b.join("sparse.img"), "backing folder");
    }
    fs::remove_file(&f).unwrap();
    if let Some(b) = m.plain_backing() {
        assert!(!b.join("sparse.img").exists());
    }
    assert_eq!(names(&m.local()), Vec::<String>::new());
}

#[test]
fn sparse_five_gib_file_both_ends_on_a_plain_store() {
    sparse_five_gib_file_both_ends(TestMount::plain());
}

#[test]
fn sparse_five_gib_file_both_ends_on_the_default_store() {
    sparse_five_gib_file_both_ends(TestMount::start());
}
