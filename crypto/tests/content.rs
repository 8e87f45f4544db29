//! Content format: round trips, random access, partial rewrites and tampering.

mod common;

use common::{TestRandom, fixed_master, pattern};
use oxidrive_crypto::Error;
use oxidrive_crypto::content::*;
use proptest::prelude::*;
use ring::rand::SystemRandom;

const C: usize = CHUNK_SIZE as usize;

fn enc(plain: &[u8], label: &str) -> Vec<u8> {
    encrypt_all(&fixed_master(), b"", plain, &TestRandom::new(label)).unwrap()
}

fn is_auth_err(r: Result<Vec<u8>, Error>) -> bool {
    matches!(
        r,
        Err(Error::Authentication(_)) | Err(Error::ImpossibleSize(_))
    )
}

#[test]
fn round_trips_edge_sizes() {
    let master = fixed_master();
    for n in [0, 1, 15, C - 1, C, C + 1, 2 * C, 3 * C + 7, 100_000] {
        let plain = pattern(n, 3);
        let ct = encrypt_all(&master, b"", &plain, &SystemRandom::new()).unwrap();
        assert_eq!(ct.len() as u64, encrypted_size(n as u64), "size {n}");
        assert_eq!(decrypt_all(&master, b"", &ct).unwrap(), plain, "size {n}");
    }
}

#[test]
fn empty_file_is_header_plus_one_empty_chunk() {
    let ct = enc(b"", "empty");
    assert_eq!(ct.len(), HEADER_LEN + 28);
    // Dropping the empty final chunk leaves an impossible size.
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &ct[..HEADER_LEN])));
}

#[test]
fn flipping_any_byte_fails() {
    let plain = pattern(C + 100, 9);
    let ct = enc(&plain, "flip");
    let master = fixed_master();
    // Every header byte, and a sample of bytes across nonces, bodies and tags.
    let positions = (0..HEADER_LEN)
        .chain((HEADER_LEN..ct.len()).step_by(997))
        .chain(ct.len() - 16..ct.len());
    for pos in positions {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        let r = decrypt_all(&master, b"", &bad);
        assert!(r.is_err(), "flip at {pos} was accepted");
    }
}

#[test]
fn truncation_at_chunk_edge_fails() {
    let ct = enc(&pattern(3 * C, 1), "trunc");
    let edge = HEADER_LEN + 2 * CIPHER_CHUNK_SIZE as usize;
    // Size is plausible (two full chunks) but chunk 1 was sealed as not-last.
    assert_eq!(plain_size(edge as u64).unwrap(), 2 * CHUNK_SIZE);
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &ct[..edge])));
    // Mid-chunk truncation is caught by the size alone.
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &ct[..edge + 5])));
}

#[test]
fn appending_a_chunk_fails() {
    let master = fixed_master();
    let ct = enc(&pattern(C, 1), "append");
    // Append a validly sealed extra last chunk under the same key and id.
    let header = ContentHeader::from_bytes(&ct[..HEADER_LEN]).unwrap();
    let key = header.open_key(&master, b"").unwrap();
    let extra = seal_chunk(
        &key,
        &header.file_id(),
        1,
        true,
        b"more",
        &SystemRandom::new(),
    )
    .unwrap();
    let mut bad = ct.clone();
    bad.extend_from_slice(&extra);
    // Chunk 0 was sealed as last; now it is not.
    assert!(is_auth_err(decrypt_all(&master, b"", &bad)));
}

#[test]
fn swapping_chunks_fails() {
    let ct = enc(&pattern(3 * C, 1), "swap");
    let c0 = HEADER_LEN..HEADER_LEN + CIPHER_CHUNK_SIZE as usize;
    let c1 = c0.end..c0.end + CIPHER_CHUNK_SIZE as usize;
    let mut bad = ct.clone();
    bad[c0.clone()].copy_from_slice(&ct[c1.clone()]);
    bad[c1].copy_from_slice(&ct[c0]);
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &bad)));
}

#[test]
fn swapping_bodies_between_files_fails() {
    let a = enc(&pattern(2 * C, 1), "file a");
    let b = enc(&pattern(2 * C, 2), "file b");
    let mut a_head_b_body = a[..HEADER_LEN].to_vec();
    a_head_b_body.extend_from_slice(&b[HEADER_LEN..]);
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &a_head_b_body)));
    // One chunk from another file (same index, same size) also fails.
    let mut mixed = a.clone();
    let c1 = HEADER_LEN + CIPHER_CHUNK_SIZE as usize..a.len();
    mixed[c1.clone()].copy_from_slice(&b[c1]);
    assert!(is_auth_err(decrypt_all(&fixed_master(), b"", &mixed)));
}

#[test]
fn header_relabelled_with_other_id_fails() {
    let a = enc(b"hello", "id a");
    let b = enc(b"hello", "id b");
    let mut bad = a.clone();
    bad[5..21].copy_from_slice(&b[5..21]);
    assert!(matches!(
        decrypt_all(&fixed_master(), b"", &bad),
        Err(Error::Authentication(_))
    ));
}

#[test]
fn wrong_master_key_fails() {
    let ct = enc(b"secret", "wrong master");
    let other = oxidrive_crypto::keys::MasterKey::from_bytes([0xEE; 32]);
    assert!(matches!(
        decrypt_all(&other, b"", &ct),
        Err(Error::Authentication(_))
    ));
}

#[test]
fn header_parsing_is_strict() {
    let ct = enc(b"x", "strict");
    let h = &ct[..HEADER_LEN];
    assert!(ContentHeader::from_bytes(h).is_ok());
    assert_eq!(
        ContentHeader::from_bytes(&h[..80]).unwrap_err(),
        Error::BadLength {
            what: "content header",
            expected: HEADER_LEN,
            got: 80
        }
    );
    let mut v2 = h.to_vec();
    v2[4] = 2;
    assert_eq!(
        ContentHeader::from_bytes(&v2).unwrap_err(),
        Error::UnsupportedVersion {
            what: "content",
            version: 2
        }
    );
    assert_eq!(
        ContentHeader::from_bytes(b"OXDV").unwrap_err(),
        Error::BadMagic("content object")
    );
}

#[test]
fn chunk_shape_rules_enforced() {
    let (header, key) = ContentHeader::new(&fixed_master(), b"", &SystemRandom::new()).unwrap();
    let id = header.file_id();
    let rng = SystemRandom::new();
    assert!(seal_chunk(&key, &id, 0, false, b"short", &rng).is_err());
    assert!(seal_chunk(&key, &id, 1, true, b"", &rng).is_err());
    assert!(seal_chunk(&key, &id, 0, true, &vec![0; C + 1], &rng).is_err());
    let sealed = seal_chunk(&key, &id, 4, true, b"tail", &rng).unwrap();
    assert_eq!(open_chunk(&key, &id, 4, true, &sealed).unwrap(), b"tail");
    assert!(open_chunk(&key, &id, 5, true, &sealed).is_err());
    assert!(open_chunk(&key, &id, 4, false, &sealed).is_err());
    assert!(open_chunk(&key, &id, 4, true, &sealed[..10]).is_err());
}

/// Reads plaintext `[offset, offset+len)` by opening only the chunks that cover it.
fn read_range(ct: &[u8], key: &FileKey, id: &FileId, offset: u64, len: u64) -> Vec<u8> {
    let plain_len = plain_size(ct.len() as u64).unwrap();
    let span = chunk_range_for(offset, len, plain_len);
    let window = span.cipher_range();
    // Only the span's bytes are handed over, as a provider range read would.
    let fetched = &ct[window.start as usize..window.end as usize];
    let mut plain = Vec::new();
    for loc in span.chunks() {
        let at =
            (loc.cipher.start - window.start) as usize..(loc.cipher.end - window.start) as usize;
        plain.extend(open_chunk(key, id, loc.index, loc.is_last, &fetched[at]).unwrap());
    }
    let skip = (offset - span.plain_range().start) as usize;
    let end = (offset.saturating_add(len).min(plain_len) as usize)
        .saturating_sub(span.plain_range().start as usize);
    if span.is_empty() {
        Vec::new()
    } else {
        plain[skip..end].to_vec()
    }
}

/// Applies a write of `data` at `offset` (or a truncate to `truncate_to`) to both the
/// plaintext model and the ciphertext, resealing only the chunks `reseal_span` names.
fn apply(
    ct: &mut Vec<u8>,
    model: &mut Vec<u8>,
    key: &FileKey,
    id: &FileId,
    offset: usize,
    data: &[u8],
    truncate_to: Option<usize>,
) -> u64 {
    let old_len = model.len() as u64;
    let written = match truncate_to {
        Some(n) => {
            model.resize(n, 0);
            0..0
        }
        None => {
            if model.len() < offset + data.len() {
                model.resize(offset + data.len(), 0);
            }
            model[offset..offset + data.len()].copy_from_slice(data);
            offset as u64..(offset + data.len()) as u64
        }
    };
    let new_len = model.len() as u64;
    let span = reseal_span(old_len, new_len, written);
    let rng = SystemRandom::new();
    let mut next = ct[..HEADER_LEN].to_vec();
    // Untouched chunks before the span keep their exact old bytes.
    let before_end = chunk_loc(new_len, span.first).map_or(HEADER_LEN as u64, |l| l.cipher.start);
    let keep_before = if span.is_empty() {
        encrypted_size(new_len)
    } else {
        before_end
    };
    next.extend_from_slice(&ct[HEADER_LEN..keep_before as usize]);
    for loc in span.chunks() {
        let part = &model[loc.plain.start as usize..loc.plain.end as usize];
        next.extend(seal_chunk(key, id, loc.index, loc.is_last, part, &rng).unwrap());
    }
    if !span.is_empty() {
        // Chunks after the span exist only when the size did not change.
        let tail_end = (encrypted_size(new_len) as usize).min(ct.len());
        let tail_start = (span.cipher_range().end as usize).min(tail_end);
        next.extend_from_slice(&ct[tail_start..tail_end]);
    }
    *ct = next;
    span.end - span.first
}

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(C - 1),
        Just(C),
        Just(C + 1),
        0..4 * C,
        Just(3 * 1024 * 1024 + 17),
    ]
}

proptest! {
    // Integration tests have no lib.rs beside them for proptest's regression files;
    // shrunk failures are printed and belong in a named test instead.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_round_trip(n in size_strategy(), seed in any::<u8>()) {
        let master = fixed_master();
        let plain = pattern(n, seed);
        let ct = encrypt_all(&master, b"", &plain, &SystemRandom::new()).unwrap();
        prop_assert_eq!(ct.len() as u64, encrypted_size(n as u64));
        prop_assert_eq!(plain_size(ct.len() as u64).unwrap(), n as u64);
        prop_assert_eq!(decrypt_all(&master, b"", &ct).unwrap(), plain);
    }

    #[test]
    fn random_range_reads(n in size_strategy(), reads in prop::collection::vec((any::<u64>(), 0u64..(3 * CHUNK_SIZE)), 1..8)) {
        let master = fixed_master();
        let plain = pattern(n, 7);
        let ct = encrypt_all(&master, b"", &plain, &SystemRandom::new()).unwrap();
        let header = ContentHeader::from_bytes(&ct[..HEADER_LEN]).unwrap();
        let key = header.open_key(&master, b"").unwrap();
        for (off, len) in reads {
            let off = off % (n as u64 + 10);
            let got = read_range(&ct, &key, &header.file_id(), off, len);
            let lo = (off as usize).min(n);
            let hi = (off.saturating_add(len) as usize).min(n);
            prop_assert_eq!(&got[..], &plain[lo..hi.max(lo)]);
        }
    }

    #[test]
    fn random_overwrites_reseal_only_touched_chunks(
        n in size_strategy(),
        ops in prop::collection::vec((any::<u64>(), 0usize..(2 * C + 3), any::<bool>()), 1..6),
    ) {
        let master = fixed_master();
        let mut model = pattern(n, 5);
        let mut ct = encrypt_all(&master, b"", &model, &SystemRandom::new()).unwrap();
        let header = ContentHeader::from_bytes(&ct[..HEADER_LEN]).unwrap();
        let key = header.open_key(&master, b"").unwrap();
        let id = header.file_id();
        for (pos, len, truncate) in ops {
            let limit = model.len() as u64 + 2 * CHUNK_SIZE;
            let pos = (pos % limit) as usize;
            let before = ct.clone();
            let old_len = model.len();
            let resealed = if truncate {
                apply(&mut ct, &mut model, &key, &id, 0, &[], Some(pos))
            } else {
                let data = pattern(len, pos as u8);
                apply(&mut ct, &mut model, &key, &id, pos, &data, None)
            };
            // A pure in-place write never touches more chunks than it overlaps.
            if !truncate && pos + len <= old_len && len > 0 {
                prop_assert_eq!(resealed, ((pos + len - 1) / C - pos / C + 1) as u64);
                // Chunks outside the write are byte-identical.
                let first = HEADER_LEN + (pos / C) * CIPHER_CHUNK_SIZE as usize;
                prop_assert_eq!(&ct[..first], &before[..first]);
            }
            prop_assert_eq!(ct.len() as u64, encrypted_size(model.len() as u64));
            prop_assert_eq!(decrypt_all(&master, b"", &ct).unwrap(), model.clone());
        }
    }
}

#[test]
fn header_is_bound_to_its_name_and_rebind_moves_it() {
    let master = fixed_master();
    let rng = SystemRandom::new();
    let ct = encrypt_all(&master, b"dir-a/name-a", b"payload", &rng).unwrap();
    assert_eq!(decrypt_all(&master, b"dir-a/name-a", &ct).unwrap(), b"payload");
    // The same object under another name (a swapped or renamed ciphertext) must not open.
    assert!(is_auth_err(decrypt_all(&master, b"dir-a/name-b", &ct)));
    assert!(is_auth_err(decrypt_all(&master, b"", &ct)));
    // A legitimate rename re-binds the header only; every chunk stays as it was.
    let header = ContentHeader::from_bytes(&ct[..HEADER_LEN]).unwrap();
    let moved = header.rebind(&master, b"dir-a/name-a", b"dir-b/name-b", &rng).unwrap();
    assert_eq!(moved.file_id(), header.file_id());
    let mut renamed = moved.to_bytes().to_vec();
    renamed.extend_from_slice(&ct[HEADER_LEN..]);
    assert_eq!(decrypt_all(&master, b"dir-b/name-b", &renamed).unwrap(), b"payload");
    assert!(is_auth_err(decrypt_all(&master, b"dir-a/name-a", &renamed)));
    assert!(header.rebind(&master, b"wrong", b"x", &rng).is_err());
}
