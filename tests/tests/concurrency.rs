//! Liveness: long reads and long uploads of one file never stall requests for
//! others. Generous bounds: this checks that nothing waits on a busy file, it is not
//! a benchmark.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oxidrive_tests::{TestMount, names, pattern};

const MIB: usize = 1 << 20;
const BOUND: Duration = Duration::from_secs(5);

#[test]
fn streaming_and_uploading_do_not_stall_other_files() {
    let m = TestMount::start();
    let l = m.local();
    // A big file to stream and one to keep re-uploading.
    for name in ["big.bin", "churn.bin"] {
        let mut f = File::create(l.join(name)).unwrap();
        let chunk = pattern(MIB, name.len() as u8);
        for _ in 0..192 {
            f.write_all(&chunk).unwrap();
        }
    }
    fs::create_dir(l.join("many")).unwrap();
    for i in 0..50 {
        fs::write(l.join(format!("many/f{i}")), format!("file {i}")).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let read_bytes = Arc::new(AtomicU64::new(0));
    let syncs = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..3 {
        let (stop, read_bytes, path) = (stop.clone(), read_bytes.clone(), l.join("big.bin"));
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024 + t * 4096];
            while !stop.load(Ordering::Relaxed) {
                let mut f = File::open(&path).unwrap();
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    read_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    {
        let (stop, syncs, path) = (stop.clone(), syncs.clone(), l.join("churn.bin"));
        threads.push(std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.write_all_at(&pattern(MIB, i as u8), (i % 192) * MIB as u64).unwrap();
                f.sync_all().unwrap(); // uploads the whole 192 MiB file
                syncs.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));

    let mut worst = (Duration::ZERO, String::new());
    let mut timed = |what: String, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        let took = t.elapsed();
        if took > worst.0 {
            worst = (took, what);
        }
    };
    let started = Instant::now();
    for i in 0..40 {
        timed(format!("stat many/f{i}"), &mut || {
            fs::metadata(l.join(format!("many/f{i}"))).unwrap();
        });
        timed("list many/".into(), &mut || assert_eq!(names(&l.join("many")).len(), 50 + i));
        timed(format!("read many/f{i}"), &mut || {
            assert_eq!(fs::read_to_string(l.join(format!("many/f{i}"))).unwrap(), format!("file {i}"))
        });
        timed(format!("create many/new{i}"), &mut || fs::write(l.join(format!("many/new{i}")), b"new").unwrap());
        timed("stat big.bin".into(), &mut || {
            assert_eq!(fs::metadata(l.join("big.bin")).unwrap().len(), 192 * MIB as u64)
        });
        timed("list top".into(), &mut || assert!(names(&l).contains(&"churn.bin".to_owned())));
        std::thread::sleep(Duration::from_millis(50));
    }
    let window = started.elapsed();
    let (read_during, syncs_during) = (read_bytes.load(Ordering::Relaxed), syncs.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(worst.0 < BOUND, "{} took {:?} while other files were busy", worst.1, worst.0);
    assert!(
        read_during > 0 && syncs_during > 0,
        "the busy work overlapped: {read_during} bytes read, {syncs_during} syncs"
    );
    eprintln!(
        "worst {:?} ({}); in {window:?}: {} MiB streamed, {syncs_during} uploads of 192 MiB",
        worst.0,
        worst.1,
        read_during >> 20
    );
}

#[test]
fn a_descriptor_held_open_mid_read_blocks_nobody() {
    let m = TestMount::start();
    let l = m.local();
    fs::write(l.join("held.bin"), pattern(4 * MIB, 9)).unwrap();
    let mut held = File::open(l.join("held.bin")).unwrap();
    let mut half = vec![0u8; 2 * MIB];
    held.read_exact(&mut half).unwrap();
    // While it is held: other files, the same file by name, rename and unlink of it.
    let t = Instant::now();
    fs::write(l.join("other"), b"other").unwrap();
    assert_eq!(fs::read(l.join("other")).unwrap(), b"other");
    assert_eq!(fs::read(l.join("held.bin")).unwrap(), pattern(4 * MIB, 9));
    fs::rename(l.join("held.bin"), l.join("moved.bin")).unwrap();
    fs::remove_file(l.join("moved.bin")).unwrap();
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).unwrap();
    half.extend_from_slice(&rest);
    assert_eq!(half, pattern(4 * MIB, 9), "the held descriptor reads the file to its end");
    drop(held);
    assert_eq!(names(&l), ["other"]);
}

#[test]
fn parallel_writers_to_distinct_files() {
    let m = TestMount::plain();
    let l = m.local();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let dir = l.clone();
            std::thread::spawn(move || {
                for i in 0..25u8 {
                    let name = dir.join(format!("t{t}-{i}"));
                    let data = pattern(10_000 + i as usize * 997, t.wrapping_mul(50).wrapping_add(i));
                    fs::write(&name, &data).unwrap();
                    assert_eq!(fs::read(&name).unwrap(), data);
                    if i % 3 == 0 {
                        fs::rename(&name, dir.join(format!("t{t}-{i}.done"))).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(names(&l).len(), 100);
    m.sync();
    for t in 0..4u8 {
        for i in 0..25u8 {
            let name = if i % 3 == 0 { format!("t{t}-{i}.done") } else { format!("t{t}-{i}") };
            let data = pattern(10_000 + i as usize * 997, t.wrapping_mul(50).wrapping_add(i));
            assert_eq!(fs::read(m.backing().join(&name)).unwrap(), data, "{name}");
        }
    }
}
