//! Frozen test vectors.
//!
//! These vectors must never change: changing them changes the on-disk format.
//! A failure here means data written by an earlier build would no longer be readable
//! (or would be written differently); bump the format version instead.
//! The "random" bytes come from `common::TestRandom`, so the vectors also pin the order
//! in which each operation draws randomness; that order is documented in docs/format.md.

mod common;

use common::{TestRandom, fixed_master, pattern};
use oxidrive_crypto::blob::{open_blob, seal_blob};
use oxidrive_crypto::content::{decrypt_all, encrypt_all};
use oxidrive_crypto::keys::{MasterKey, Purpose};
use oxidrive_crypto::names::{DirId, NameCipher};
use oxidrive_crypto::vault::{KdfParams, Vault};
use ring::digest;

fn join(parts: &[&str]) -> Vec<u8> {
    hex::decode(parts.concat()).unwrap()
}

#[test]
fn hkdf_subkeys() {
    let master = fixed_master();
    let expected = [
        (
            Purpose::ContentKeyWrap,
            "fe27056fe1c10ab80309eab35b536917b2af00643af05b74980a30bbf4abbb85",
        ),
        (
            Purpose::NameEncryption,
            "fccb776b21f13ff342a5cccf83c8328d76a6f19e5a582ce87b5c0ed847cebe38",
        ),
        (
            Purpose::NameNonce,
            "f84dc165b54de9d87d3cca382cb086a6b4e7a83892a7bcd6c98ab103c6201919",
        ),
        (
            Purpose::Metadata,
            "5d157c96d9b5fb9e5c0117b7e12cf08bf80009c3f1725d668817b5e7eca76b41",
        ),
        (
            Purpose::LocalState,
            "4408e678f60444d83ed69f8ae4f96030b8d71a925c3b99d7ba68f4d32d85bebf",
        ),
    ];
    for (purpose, hex) in expected {
        assert_eq!(
            hex::encode(master.derive_subkey(purpose).expose_secret()),
            hex,
            "{purpose:?}"
        );
    }
}

const CONTENT_HELLO: &[&str] = &[
    "4f58444301d81d61bbf7c44ceeb3ea11ae3bafd4ff911b4fe1f1fdc4e13149683305795994c8a1a0",
    "e8da3d2d558e725bfffa0439c69d8a94ad0abeda63365b8813cd825a8e88edb0f64950e8d49b3189",
    "8ec7e75efc4d22f5eb5f4c283890eb23839cd8b1f9e41ae07fff5c02ff25c91a5a4f938b6b74bc3f",
    "351a11e7d5",
];

const CONTENT_EMPTY: &[&str] = &[
    "4f584443019436bd9f429118ef0a90eff21b53947331639919de2a5f4a56211c879d261a4d5c9c21",
    "1fcbaac47203e23d295a5c0517cce4b9e5d986ce75e2df82b0a280e8ef0420e86e90acc4c5451243",
    "ecdeac50cee2c4d4e8de2ef654afef1e58224a3a1b17068c0042b98b17",
];

#[test]
fn content_small_file() {
    let master = fixed_master();
    let plain = b"hello, oxidrive\n";
    let ct = encrypt_all(&master, b"", plain, &TestRandom::new("oxidrive content vector")).unwrap();
    assert_eq!(ct, join(CONTENT_HELLO));
    assert_eq!(decrypt_all(&master, b"", &join(CONTENT_HELLO)).unwrap(), plain);
}

#[test]
fn content_empty_file() {
    let master = fixed_master();
    let ct = encrypt_all(&master, b"", b"", &TestRandom::new("oxidrive empty vector")).unwrap();
    assert_eq!(ct, join(CONTENT_EMPTY));
    assert_eq!(decrypt_all(&master, b"", &join(CONTENT_EMPTY)).unwrap(), b"");
}

#[test]
fn content_100_000_bytes() {
    let master = fixed_master();
    let plain = pattern(100_000, 0);
    let ct = encrypt_all(&master, b"", &plain, &TestRandom::new("oxidrive 100k vector")).unwrap();
    assert_eq!(ct.len(), 100137);
    assert_eq!(
        hex::encode(&ct[..93]),
        "4f584443015744ac5bf38cd6dafbc40e4d13663c9ca9f82a300f9aecc73f27d6546abf35f14fb3681c0e35e7e521899886ef18178496cbda6467266f6c2f325ca396ed193c4843fb860ecf251661abace3d325ee83411bd66ab4d9455a"
    );
    assert_eq!(
        hex::encode(digest::digest(&digest::SHA256, &ct)),
        "2a8da78bc6ad431efd98f91728a737cf59927906e28f4591d2b7fb45bea04b5a"
    );
    assert_eq!(decrypt_all(&master, b"", &ct).unwrap(), plain);
}

#[test]
fn names() {
    let names = NameCipher::new(&fixed_master()).unwrap();
    let root = "xdqveilan6ak3y7mgddtqjynmknb7rspchcwx4qgeovdukwu7ipqd5ge5s5ar7565kz7yoi";
    assert_eq!(names.encrypt(&DirId::ROOT, b"hello.txt").unwrap(), root);
    assert_eq!(names.decrypt(&DirId::ROOT, root).unwrap(), b"hello.txt");

    let dir = DirId::from_bytes([0x11; 16]);
    let docs = "zvzozzl4xs4znqg5aqolb4yhht7yu47o5jg755lri53b2zwcbxoquznnaasmhwgv55nfd2xbvlbcsyjheyyviid44goadqrk";
    assert_eq!(names.encrypt(&dir, "Документы".as_bytes()).unwrap(), docs);
    assert_eq!(names.decrypt(&dir, docs).unwrap(), "Документы".as_bytes());
}

const LONG_NAME_FULL: &[&str] = &[
    "zuavmie7coq3pdokk6rrk4e67jwowo5ioop3bao23tlt7nx5hzcexrsqh3ksb2ijyl2r3anweatt3rpx",
    "bfgk34atton23hfgp4mqbbnk4ww6226r72qxodbxenphl4diq2b3cq4jg7bzgw7clxtoa3my6we2etgx",
    "qhuwss4c37lsoasb5yabntykqrb5kcype6en25tlpy7ogxgzz7egbco5q5kt33jp2rso424bbjy7nhqv",
    "ars3a67tvz4vjd5ixhi3mlkzdr272wi4nhmw3wp4no6palwz5a2sq5dobht53f6g7tpw3cgvmfudmc4y",
    "gc5j6plzitp3f3zdpoaqnbfsuwkadg7ldygehrrbzmjos5xo2pxszvirhjx2nsxqswxcjxh64czdxzbt",
    "abkrelqjlphhywsupt4z4rnhngrta7nk3ridkhodvetr3xyywehk6ky",
];

#[test]
fn long_name() {
    let names = NameCipher::new(&fixed_master()).unwrap();
    let dir = DirId::from_bytes([0x22; 16]);
    let plain: Vec<u8> = (0..255u32).map(|i| b'a' + (i % 26) as u8).collect();
    let stored = names.encrypt_for_storage(&dir, &plain).unwrap();
    assert_eq!(
        stored.name,
        "l-xwhb7kdost2ttg6wjx35ippbczhpoj4x74kqbyhno2elk6ccdldq"
    );
    let side = stored.side_object.unwrap();
    assert_eq!(
        side.name,
        "l-xwhb7kdost2ttg6wjx35ippbczhpoj4x74kqbyhno2elk6ccdldq.name"
    );
    assert_eq!(side.content, LONG_NAME_FULL.concat().as_bytes());
}

#[test]
fn vault() {
    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 2,
        parallelism: 1,
    };
    let pass = b"correct horse battery staple";
    let (vault, master) =
        Vault::create(pass, params, &TestRandom::new("oxidrive vault vector")).unwrap();
    let expected = join(&[
        "4f58445601010000004000000002000000013a5d3ea3c75865557b5c49aeb13bd556a1ab9e588a5e",
        "1e7fc27e6f5cd7bbd4e86afa46ee36d03f50a2a1eda737fea625722ffb171b137db73e1f1c520b00",
        "262e37da04fd90a521f0314e4b39",
    ]);
    assert_eq!(vault.to_bytes().to_vec(), expected);
    let master_hex = "115cec1d438cd0b38776793d7a3893fcf763ba82e131cce966bc0130a854216d";
    assert_eq!(hex::encode(master.expose_secret()), master_hex);
    let unlocked = Vault::from_bytes(&expected).unwrap().unlock(pass).unwrap();
    assert_eq!(hex::encode(unlocked.expose_secret()), master_hex);
}

#[test]
fn blob() {
    let key = fixed_master().derive_subkey(Purpose::Metadata);
    let sealed = seal_blob(
        &key,
        b"symlink",
        b"../target",
        &TestRandom::new("oxidrive blob vector"),
    )
    .unwrap();
    let expected = "0190138ab2c9427eb0c8f7ce8d3fb6a0f1781073ecb911394a9198b367c0c7c5552db34f2d9f";
    assert_eq!(hex::encode(&sealed), expected);
    assert_eq!(
        open_blob(&key, b"symlink", &hex::decode(expected).unwrap()).unwrap(),
        b"../target"
    );
    // Sanity: the fixed master key is 00 01 .. 1f.
    assert_eq!(
        fixed_master().expose_secret(),
        MasterKey::from_bytes(core::array::from_fn(|i| i as u8)).expose_secret()
    );
}
