//! Name encryption: determinism, directory binding, long names, validation.

mod common;

use common::{TestRandom, fixed_master};
use oxidrive_crypto::Error;
use oxidrive_crypto::names::*;
use proptest::prelude::*;

fn cipher() -> NameCipher {
    NameCipher::new(&fixed_master()).unwrap()
}

fn dir(n: u8) -> DirId {
    DirId::from_bytes([n; DIR_ID_LEN])
}

#[test]
fn deterministic_and_round_trips() {
    let c = cipher();
    let a = c.encrypt(&dir(1), b"report.pdf").unwrap();
    assert_eq!(a, c.encrypt(&dir(1), b"report.pdf").unwrap());
    assert_eq!(c.decrypt(&dir(1), &a).unwrap(), b"report.pdf");
    assert_eq!(classify(&a), EntryKind::Encrypted);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    );
}

#[test]
fn bound_to_directory() {
    let c = cipher();
    let a = c.encrypt(&dir(1), b"same").unwrap();
    let b = c.encrypt(&dir(2), b"same").unwrap();
    assert_ne!(a, b);
    assert!(matches!(
        c.decrypt(&dir(2), &a),
        Err(Error::Authentication(_))
    ));
    assert!(matches!(
        c.decrypt(&DirId::ROOT, &a),
        Err(Error::Authentication(_))
    ));
}

#[test]
fn wrong_key_fails() {
    let a = cipher().encrypt(&DirId::ROOT, b"x").unwrap();
    let other = NameCipher::new(&oxidrive_crypto::keys::MasterKey::from_bytes([9; 32])).unwrap();
    assert!(other.decrypt(&DirId::ROOT, &a).is_err());
}

#[test]
fn tampered_names_fail() {
    let c = cipher();
    let a = c.encrypt(&dir(3), b"notes.txt").unwrap();
    for i in 0..a.len() {
        let mut bad = a.clone().into_bytes();
        bad[i] = if bad[i] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(c.decrypt(&dir(3), &bad).is_err(), "position {i}");
    }
    assert!(c.decrypt(&dir(3), &a[..a.len() - 8]).is_err());
    assert!(c.decrypt(&dir(3), &a.to_uppercase()).is_err());
    assert!(c.decrypt(&dir(3), "").is_err());
}

#[test]
fn rejects_invalid_names() {
    let c = cipher();
    for bad in [
        &b""[..],
        b".",
        b"..",
        b"a/b",
        b"/",
        b"nul\0byte",
        &[b'x'; 256],
    ] {
        assert!(
            matches!(c.encrypt(&DirId::ROOT, bad), Err(Error::InvalidName(_))),
            "{bad:?}"
        );
    }
    // Dots inside names are fine.
    assert!(c.encrypt(&DirId::ROOT, b"...").is_ok());
    assert!(c.encrypt(&DirId::ROOT, b".hidden").is_ok());
}

#[test]
fn length_leaks_only_in_blocks_of_16() {
    let c = cipher();
    let len = |n: usize| c.encrypt(&DirId::ROOT, &vec![b'a'; n]).unwrap().len();
    assert_eq!(len(1), len(15));
    assert!(len(16) > len(15));
    assert_eq!(len(16), len(31));
}

#[test]
fn short_long_threshold() {
    let c = cipher();
    // 127 bytes pad to 128 and still fit; 128 bytes pad to 144 and do not.
    let e127 = c.encrypt_for_storage(&DirId::ROOT, &[b'n'; 127]).unwrap();
    assert!(e127.side_object.is_none());
    assert!(e127.name.len() <= STORED_NAME_MAX);
    let e128 = c.encrypt_for_storage(&DirId::ROOT, &[b'n'; 128]).unwrap();
    assert!(e128.side_object.is_some());
}

#[test]
fn long_name_of_255_bytes_round_trips() {
    let c = cipher();
    let name: Vec<u8> = "é"
        .repeat(127)
        .into_bytes()
        .into_iter()
        .chain([b'z'])
        .collect();
    assert_eq!(name.len(), 255);
    let d = dir(7);
    let stored = c.encrypt_for_storage(&d, &name).unwrap();
    let side = stored.side_object.clone().unwrap();
    assert_eq!(stored.name.len(), 54);
    assert!(stored.name.starts_with(LONG_NAME_PREFIX));
    assert_eq!(side.name, format!("{}.name", stored.name));
    assert_eq!(classify(&stored.name), EntryKind::LongName);
    assert_eq!(classify(&side.name), EntryKind::LongNameSide);
    let full = resolve_long_name(&stored.name, &side.content).unwrap();
    assert_eq!(c.decrypt(&d, &full).unwrap(), name);
    // A side object from another long name does not resolve.
    let other = c.encrypt_for_storage(&d, &[b'q'; 200]).unwrap();
    let other_side = other.side_object.unwrap();
    assert!(resolve_long_name(&stored.name, &other_side.content).is_err());
    assert!(resolve_long_name(&other.name, &side.content).is_err());
    // Short names are not long-name entries.
    let short = c.encrypt(&d, b"a").unwrap();
    assert!(resolve_long_name(&short, short.as_bytes()).is_err());
}

#[test]
fn reserved_objects_are_not_entries() {
    for name in [
        "oxidrive.vault",
        "oxidrive.dirid",
        "README",
        "l-abc",
        ".DS_Store",
    ] {
        assert_eq!(classify(name), EntryKind::Other, "{name}");
    }
}

#[test]
fn dir_ids_parse_strictly() {
    let rng = TestRandom::new("dir ids");
    let id = DirId::generate(&rng).unwrap();
    assert_eq!(DirId::from_slice(id.as_bytes()).unwrap(), id);
    assert!(DirId::from_slice(&[0; 15]).is_err());
    assert!(DirId::from_slice(&[0; 17]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_name_round_trips(
        name in prop::collection::vec(1u8..=255, 1..=255).prop_filter("not / or dots", |n| {
            !n.contains(&b'/') && n != b"." && n != b".."
        }),
        d in any::<[u8; 16]>(),
    ) {
        let c = cipher();
        let d = DirId::from_bytes(d);
        let stored = c.encrypt_for_storage(&d, &name).unwrap();
        prop_assert!(stored.name.len() <= STORED_NAME_MAX);
        let full = match &stored.side_object {
            Some(side) => resolve_long_name(&stored.name, &side.content).unwrap(),
            None => stored.name.clone(),
        };
        prop_assert_eq!(c.decrypt(&d, &full).unwrap(), name);
    }
}
