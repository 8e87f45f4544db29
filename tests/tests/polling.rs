//! What polling for remote changes costs on a tree that does not change, and how soon
//! a change is still seen. The storage is a real local folder; an OpenDAL layer under
//! the store records every folder listing that reaches it (`oxidrive_tests::direct`).
//! Rounds are driven one by one (`Store::poll_due`), as the background poller does
//! once per interval.

use std::collections::BTreeSet;

use oxidrive_tests::direct::{Direct, Storage};

const FOLDERS: usize = 30;

fn folder(i: usize) -> String {
    format!("d{i:02}")
}

fn trim(p: &str) -> String {
    p.trim_matches('/').to_owned()
}

/// A tree of FOLDERS folders of one file each, made by the other device and listed
/// once by this one (so its mirror knows every folder, as after browsing them).
async fn browsed_tree() -> Direct {
    let d = Direct::start(Storage::Local, false).await;
    for i in 0..FOLDERS {
        d.other.create_dir(&folder(i)).await.unwrap();
        d.other.write_all(&format!("{}/f", folder(i)), vec![i as u8; 10]).await.unwrap();
    }
    d.store.list("").await.unwrap();
    for i in 0..FOLDERS {
        assert_eq!(d.store.list(&folder(i)).await.unwrap().len(), 1);
    }
    d.take_lists();
    d
}

/// Runs one background poll; returns the folders it listed and how many changes it saw.
async fn round(d: &Direct) -> (BTreeSet<String>, usize) {
    let summary = d.store.poll_due().await.unwrap();
    let listed: BTreeSet<String> = d.take_lists().iter().map(|p| trim(p)).collect();
    assert_eq!(summary.folders, listed.len());
    (listed, summary.changed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_folders_are_listed_less_and_less_often() {
    let d = browsed_tree().await;
    let mut rounds = Vec::new();
    for _ in 0..32 {
        let (listed, changed) = round(&d).await;
        assert_eq!(changed, 0);
        rounds.push(listed);
    }
    let all = rounds[0].clone();
    assert!(
        all.len() > FOLDERS && (0..FOLDERS).all(|i| all.contains(&folder(i))),
        "first round lists everything: {all:?}"
    );
    assert!(rounds[1].is_empty(), "a folder found unchanged waits: {:?}", rounds[1]);
    let total: usize = rounds.iter().map(BTreeSet::len).sum();
    let every_round = 32 * all.len();
    println!("32 rounds listed {total} folders; listing every folder every round: {every_round}");
    assert!(total * 5 <= every_round, "{total} listings in 32 rounds is not much below {every_round}");
    // Staleness stays bounded: any 16 consecutive rounds list every folder.
    for start in 0..=16 {
        let seen: BTreeSet<&String> = rounds[start..start + 16].iter().flatten().collect();
        assert_eq!(seen.len(), all.len(), "rounds {start}..{} miss some folders", start + 16);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_a_quiet_folder_is_seen_and_makes_it_busy_again() {
    let d = browsed_tree().await;
    for _ in 0..32 {
        round(&d).await;
    }
    let busy = folder(5);
    d.other.write_all(&format!("{busy}/new"), b"made elsewhere".to_vec()).await.unwrap();
    let mut waited = 0;
    loop {
        waited += 1;
        let (listed, changed) = round(&d).await;
        if changed > 0 {
            assert!(listed.contains(&busy));
            break;
        }
        assert!(waited < 16, "the change was not seen within 16 rounds");
    }
    let names: Vec<String> = d.store.list(&busy).await.unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    d.take_lists();
    // Changed, so listed again at the very next round; the quiet ones are not.
    let (listed, _) = round(&d).await;
    assert!(listed.contains(&busy), "{listed:?}");
    assert!(listed.len() < FOLDERS / 2, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looking_at_a_quiet_folder_polls_it_at_the_normal_rate_again() {
    let d = browsed_tree().await;
    for _ in 0..32 {
        round(&d).await;
    }
    let looked = folder(9);
    assert!(d.store.stat(&format!("{looked}/f")).await.unwrap().is_some());
    d.take_lists();
    let (listed, _) = round(&d).await;
    assert!(listed.contains(&looked), "{listed:?}");
    // `sync --now` lists every folder, quiet or not.
    let summary = d.store.poll().await.unwrap();
    let listed: BTreeSet<String> = d.take_lists().iter().map(|p| trim(p)).collect();
    assert!(listed.len() > FOLDERS && summary.folders == listed.len(), "{listed:?}");
}
