//! Looking up names that do not exist, as `tar x`, `cp -r` and `rsync` do before each
//! create: in a folder listed within the last second, or made by this device within
//! it, the answer comes from that listing, without asking the provider. Driven
//! without FUSE over a real local folder; an OpenDAL layer records every stat that
//! reaches it (`oxidrive_tests::direct`).

use std::ffi::OsStr;
use std::time::Duration;

use oxidrive_tests::direct::{Direct, ME, Storage};
use oxidrive_vfs::ErrorKind;

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[tokio::test]
async fn absent_names_in_a_new_folder_cost_no_provider_request() {
    let d = Direct::start(Storage::Local, false).await;
    let dir = d.vfs.mkdir(d.root, n("new"), 0o755, ME).await.unwrap().ino;
    d.take_stats();
    for i in 0..20 {
        let err = d.vfs.lookup(dir, n(&format!("f{i}"))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
    assert_eq!(d.take_stats(), Vec::<String>::new(), "absent names were asked of the provider");
    // What this device makes in it is seen at once: a folder (made on the provider
    // at once) and a file (in the journal until its upload).
    let sub = d.vfs.mkdir(dir, n("sub"), 0o755, ME).await.unwrap();
    assert_eq!(d.vfs.lookup(dir, n("sub")).await.unwrap().ino, sub.ino);
    d.save_in(dir, "f1", b"one").await;
    assert_eq!(d.vfs.lookup(dir, n("f1")).await.unwrap().size, 3);
    d.sync().await;
    assert_eq!(d.vfs.lookup(dir, n("f1")).await.unwrap().size, 3, "an uploaded file is found");
}

#[tokio::test]
async fn a_listing_answers_for_one_second() {
    let d = Direct::start(Storage::Local, false).await;
    d.other.create_dir("shared").await.unwrap();
    d.other.write_all("shared/there", b"x".to_vec()).await.unwrap();
    let dir = d.vfs.lookup(d.root, n("shared")).await.unwrap().ino;
    d.store.list("shared").await.unwrap();
    d.take_stats();
    assert_eq!(d.vfs.lookup(dir, n("there")).await.unwrap().size, 1);
    assert_eq!(d.vfs.lookup(dir, n("missing")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.take_stats(), Vec::<String>::new());
    // Another device adds the name meanwhile: after the second it is asked, and found.
    d.other.write_all("shared/missing", b"late".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(d.vfs.lookup(dir, n("missing")).await.unwrap().size, 4);
    assert_eq!(d.take_stats().len(), 1);
}
