//! Sealed blobs for symlink targets and metadata.

mod common;

use common::{TestRandom, fixed_master};
use oxidrive_crypto::Error;
use oxidrive_crypto::blob::*;
use oxidrive_crypto::keys::Purpose;

#[test]
fn round_trip_and_binding() {
    let master = fixed_master();
    let key = master.derive_subkey(Purpose::Metadata);
    let rng = TestRandom::new("blob");
    let sealed = seal_blob(&key, b"symlink", b"../target", &rng).unwrap();
    assert_eq!(sealed.len(), 9 + BLOB_OVERHEAD);
    assert_eq!(open_blob(&key, b"symlink", &sealed).unwrap(), b"../target");
    assert!(matches!(
        open_blob(&key, b"metadata", &sealed),
        Err(Error::Authentication(_))
    ));
    let other = master.derive_subkey(Purpose::LocalState);
    assert!(open_blob(&other, b"symlink", &sealed).is_err());
    for i in 1..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x80;
        assert!(open_blob(&key, b"symlink", &bad).is_err(), "byte {i}");
    }
    let mut v2 = sealed.clone();
    v2[0] = 2;
    assert!(matches!(
        open_blob(&key, b"symlink", &v2),
        Err(Error::UnsupportedVersion { .. })
    ));
    assert!(open_blob(&key, b"symlink", &[]).is_err());
    assert!(open_blob(&key, b"symlink", &sealed[..10]).is_err());
}

#[test]
fn empty_blob() {
    let key = fixed_master().derive_subkey(Purpose::Metadata);
    let sealed = seal_blob(&key, b"", b"", &TestRandom::new("e")).unwrap();
    assert_eq!(open_blob(&key, b"", &sealed).unwrap(), b"");
}
