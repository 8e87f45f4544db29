//! Vault header: create, unlock, rewrap, strict parsing.

mod common;

use common::TestRandom;
use oxidrive_crypto::Error;
use oxidrive_crypto::vault::*;

const CHEAP: KdfParams = KdfParams::INSECURE_TEST_ONLY;

#[test]
fn create_then_unlock() {
    let (vault, master) = Vault::create(b"hunter2", CHEAP, &TestRandom::new("v")).unwrap();
    let parsed = Vault::from_bytes(&vault.to_bytes()).unwrap();
    assert_eq!(parsed, vault);
    assert_eq!(
        parsed.unlock(b"hunter2").unwrap().expose_secret(),
        master.expose_secret()
    );
}

#[test]
fn wrong_passphrase() {
    let (vault, _) = Vault::create(b"hunter2", CHEAP, &TestRandom::new("v")).unwrap();
    assert_eq!(
        vault.unlock(b"hunter3").unwrap_err(),
        Error::WrongPassphrase
    );
    assert_eq!(vault.unlock(b"").unwrap_err(), Error::WrongPassphrase);
}

#[test]
fn rewrap_keeps_master_key() {
    let rng = TestRandom::new("rewrap");
    let (vault, master) = Vault::create(b"old", CHEAP, &rng).unwrap();
    let stronger = KdfParams {
        m_cost_kib: 64,
        t_cost: 2,
        parallelism: 2,
    };
    let new = vault.rewrap(b"old", b"new", stronger, &rng).unwrap();
    assert_eq!(new.params(), stronger);
    assert_eq!(
        new.unlock(b"new").unwrap().expose_secret(),
        master.expose_secret()
    );
    assert_eq!(new.unlock(b"old").unwrap_err(), Error::WrongPassphrase);
    assert_eq!(
        vault.rewrap(b"wrong", b"new", CHEAP, &rng).unwrap_err(),
        Error::WrongPassphrase
    );
}

#[test]
fn every_header_byte_is_authenticated() {
    let (vault, _) = Vault::create(b"pw", CHEAP, &TestRandom::new("tamper")).unwrap();
    let bytes = vault.to_bytes();
    for i in 0..bytes.len() {
        let mut bad = bytes;
        bad[i] ^= 0x01;
        // Either the parse rejects it, or the unlock does.
        let accepted = Vault::from_bytes(&bad)
            .and_then(|v| v.unlock(b"pw"))
            .is_ok();
        assert!(!accepted, "byte {i} not authenticated");
    }
}

#[test]
fn parameters_cannot_be_lowered() {
    let params = KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        parallelism: 1,
    };
    let (vault, _) = Vault::create(b"pw", params, &TestRandom::new("lower")).unwrap();
    let mut bad = vault.to_bytes();
    bad[13] = 1; // t_cost 2 -> 1
    let parsed = Vault::from_bytes(&bad).unwrap();
    assert_eq!(parsed.params().t_cost, 1);
    assert_eq!(parsed.unlock(b"pw").unwrap_err(), Error::WrongPassphrase);
}

#[test]
fn strict_parsing() {
    let (vault, _) = Vault::create(b"pw", CHEAP, &TestRandom::new("strict")).unwrap();
    let bytes = vault.to_bytes();
    assert_eq!(
        Vault::from_bytes(b"nope").unwrap_err(),
        Error::BadMagic("vault")
    );
    assert_eq!(
        Vault::from_bytes(b"").unwrap_err(),
        Error::BadMagic("vault")
    );
    let mut v2 = bytes;
    v2[4] = 2;
    assert_eq!(
        Vault::from_bytes(&v2).unwrap_err(),
        Error::UnsupportedVersion {
            what: "vault",
            version: 2
        }
    );
    assert_eq!(
        Vault::from_bytes(&bytes[..93]).unwrap_err(),
        Error::BadLength {
            what: "vault",
            expected: VAULT_LEN,
            got: 93
        }
    );
    let mut long = bytes.to_vec();
    long.push(0);
    assert!(matches!(
        Vault::from_bytes(&long),
        Err(Error::BadLength { .. })
    ));
    let mut kdf = bytes;
    kdf[5] = 2;
    assert!(matches!(Vault::from_bytes(&kdf), Err(Error::KdfParams(_))));
    let mut huge = bytes;
    huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Vault::from_bytes(&huge), Err(Error::KdfParams(_))));
    let mut zero_t = bytes;
    zero_t[10..14].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        Vault::from_bytes(&zero_t),
        Err(Error::KdfParams(_))
    ));
}

#[test]
fn invalid_params_rejected_at_create() {
    let bad = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
        parallelism: 2,
    };
    assert!(matches!(
        Vault::create(b"pw", bad, &TestRandom::new("x")),
        Err(Error::KdfParams(_))
    ));
    assert!(KdfParams::DEFAULT.validate().is_ok());
    assert_eq!(KdfParams::default().m_cost_kib, 65536);
}
