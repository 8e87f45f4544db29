//! A process's first SQLite connections, opened on several threads at once: SQLCipher
//! finishes initializing after SQLite counts as initialized, and a keyed open in that
//! gap failed (see `OPENING` in index.rs). Only a fresh process has that gap, so the test
//! runs itself as child processes (without the lock, about 1 in 100 of them failed).

use std::process::Command;

use oxidrive_cache::Index;

const CHILD: &str = "OXIDRIVE_FIRST_OPEN_CHILD";

#[test]
fn keyed_indexes_opened_together_by_a_fresh_process() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let dir = std::path::PathBuf::from(dir);
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let (dir, barrier) = (&dir, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let ix = match t {
                        0 => Index::in_memory(),
                        _ => Index::open(&dir.join(format!("{t}.sqlite")), Some(&[t; 32])),
                    };
                    ix.unwrap_or_else(|e| panic!("open {t}: {e}"));
                });
            }
        });
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut failed = Vec::new();
    for run in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&exe)
            .args(["--exact", "keyed_indexes_opened_together_by_a_fresh_process", "--nocapture"])
            .env(CHILD, dir.path())
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!("run {run}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failed.is_empty(), "{} of 200 fresh processes failed:\n{}", failed.len(), failed.join("\n"));
}
