//! The cryptography under the index's encrypted pages: a SQLCipher crypto provider made
//! of ring (HMAC, PBKDF2, random bytes) and RustCrypto's AES-256-CBC (ring has no CBC),
//! used instead of SQLCipher's OpenSSL one.
//!
//! Why: for every page it writes or reads, the OpenSSL provider fetches the algorithms,
//! allocates and frees contexts and schedules the keys anew (`EVP_MAC_fetch`,
//! `EVP_CIPHER_CTX_new`, ...): as much time as the cryptography itself, and every
//! file's commit writes about a dozen pages. The algorithms, and so the pages, are
//! SQLCipher's own: an index written by either provider opens with the other (a test
//! opens a fixture the OpenSSL provider wrote).
//!
//! The provider struct mirrors `struct sqlcipher_provider` of the SQLCipher bundled by
//! `libsqlite3-sys` (4.19); it is registered once, before the first index is opened.

use std::ffi::{c_char, c_int, c_void};
use std::num::NonZeroU32;
use std::sync::Once;

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, pbkdf2};

const SQLITE_OK: c_int = 0;
const SQLITE_ERROR: c_int = 1;
const SQLITE_NOMEM: c_int = 7;
/// SQLCipher's `SQLCIPHER_ENCRYPT` (decrypting is 0).
const ENCRYPT: c_int = 1;
const KEY_LEN: usize = 32;
const BLOCK_LEN: usize = 16;

/// `struct sqlcipher_provider`, field for field.
#[repr(C)]
struct Provider {
    init: Option<unsafe extern "C" fn() -> c_int>,
    shutdown: Option<unsafe extern "C" fn()>,
    get_provider_name: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    add_random: unsafe extern "C" fn(*mut c_void, *const c_void, c_int) -> c_int,
    random: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
    hmac: unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *const u8,
        c_int,
        *const u8,
        c_int,
        *const u8,
        c_int,
        *mut u8,
    ) -> c_int,
    kdf: unsafe extern "C" fn(*mut c_void, c_int, *const u8, c_int, *const u8, c_int, c_int, c_int, *mut u8) -> c_int,
    cipher: unsafe extern "C" fn(*mut c_void, c_int, *const u8, c_int, *const u8, *const u8, c_int, *mut u8) -> c_int,
    get_cipher: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    get_key_sz: unsafe extern "C" fn(*mut c_void) -> c_int,
    get_iv_sz: unsafe extern "C" fn(*mut c_void) -> c_int,
    get_block_sz: unsafe extern "C" fn(*mut c_void) -> c_int,
    get_hmac_sz: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    ctx_init: unsafe extern "C" fn(*mut *mut c_void) -> c_int,
    ctx_free: unsafe extern "C" fn(*mut *mut c_void) -> c_int,
    fips_status: unsafe extern "C" fn(*mut c_void) -> c_int,
    get_provider_version: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    next: *mut Provider,
}

unsafe extern "C" {
    fn sqlcipher_register_provider(p: *mut Provider) -> c_int;
    fn sqlcipher_malloc(size: u64) -> *mut c_void;
}

/// Makes this provider SQLCipher's default for every connection keyed from now on.
/// Returns SQLite's error code if registering failed (the OpenSSL provider stays).
pub(crate) fn register() -> Result<(), c_int> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| result = register_now());
    result
}

fn register_now() -> Result<(), c_int> {
    // SQLite's initialization sets up SQLCipher's mutexes and its default provider;
    // ours then goes in front of it.
    // SAFETY: plain C calls; `p` is allocated by SQLCipher's own allocator, as the
    // providers it frees at `sqlite3_shutdown` are, and fully written before use.
    unsafe {
        let rc = rusqlite::ffi::sqlite3_initialize();
        if rc != SQLITE_OK {
            return Err(rc);
        }
        let p = sqlcipher_malloc(std::mem::size_of::<Provider>() as u64).cast::<Provider>();
        if p.is_null() {
            return Err(SQLITE_NOMEM);
        }
        p.write(Provider {
            init: None,
            shutdown: None,
            get_provider_name,
            add_random,
            random,
            hmac: hmac_fn,
            kdf,
            cipher,
            get_cipher,
            get_key_sz,
            get_iv_sz,
            get_block_sz,
            get_hmac_sz,
            ctx_init,
            ctx_free,
            fips_status,
            get_provider_version,
            next: std::ptr::null_mut(),
        });
        match sqlcipher_register_provider(p) {
            SQLITE_OK => Ok(()),
            rc => Err(rc),
        }
    }
}

/// `len` bytes at `ptr` (none for a null pointer or a length below 1).
///
/// # Safety
/// `ptr` must be valid for `len` bytes, as SQLCipher's calls guarantee.
unsafe fn bytes<'a>(ptr: *const u8, len: c_int) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    // SAFETY: the caller's promise.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn code(ok: bool) -> c_int {
    if ok { SQLITE_OK } else { SQLITE_ERROR }
}

unsafe extern "C" fn get_provider_name(_: *mut c_void) -> *const c_char {
    c"oxidrive-ring".as_ptr()
}

unsafe extern "C" fn get_provider_version(_: *mut c_void) -> *const c_char {
    c"ring 0.17, aes 0.8".as_ptr()
}

unsafe extern "C" fn get_cipher(_: *mut c_void) -> *const c_char {
    c"aes-256-cbc".as_ptr()
}

unsafe extern "C" fn add_random(_: *mut c_void, _: *const c_void, _: c_int) -> c_int {
    SQLITE_OK
}

unsafe extern "C" fn random(_: *mut c_void, buffer: *mut c_void, length: c_int) -> c_int {
    let Ok(len) = usize::try_from(length) else { return SQLITE_ERROR };
    if buffer.is_null() {
        return code(len == 0);
    }
    // SAFETY: SQLCipher passes a buffer of `length` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), len) };
    code(SystemRandom::new().fill(out).is_ok())
}

fn hmac_algorithm(algorithm: c_int) -> Option<hmac::Algorithm> {
    match algorithm {
        0 => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        1 => Some(hmac::HMAC_SHA256),
        2 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn hmac_fn(
    _: *mut c_void,
    algorithm: c_int,
    key: *const u8,
    key_sz: c_int,
    input: *const u8,
    in_sz: c_int,
    input2: *const u8,
    in2_sz: c_int,
    out: *mut u8,
) -> c_int {
    // SAFETY: SQLCipher passes buffers of the sizes it gives.
    let (Some(alg), Some(key), Some(input)) =
        (hmac_algorithm(algorithm), unsafe { bytes(key, key_sz) }, unsafe { bytes(input, in_sz) })
    else {
        return SQLITE_ERROR;
    };
    if out.is_null() {
        return SQLITE_ERROR;
    }
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg, key));
    ctx.update(input);
    // SAFETY: as above.
    if let Some(second) = unsafe { bytes(input2, in2_sz) } {
        ctx.update(second);
    }
    let tag = ctx.sign();
    // SAFETY: `out` holds `get_hmac_sz(algorithm)` bytes, the tag's length.
    unsafe { std::ptr::copy_nonoverlapping(tag.as_ref().as_ptr(), out, tag.as_ref().len()) };
    SQLITE_OK
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn kdf(
    _: *mut c_void,
    algorithm: c_int,
    pass: *const u8,
    pass_sz: c_int,
    salt: *const u8,
    salt_sz: c_int,
    workfactor: c_int,
    key_sz: c_int,
    key: *mut u8,
) -> c_int {
    let alg = match algorithm {
        0 => pbkdf2::PBKDF2_HMAC_SHA1,
        1 => pbkdf2::PBKDF2_HMAC_SHA256,
        2 => pbkdf2::PBKDF2_HMAC_SHA512,
        _ => return SQLITE_ERROR,
    };
    // SAFETY: SQLCipher passes buffers of the sizes it gives.
    let (Some(pass), Some(salt)) = (unsafe { bytes(pass, pass_sz) }, unsafe { bytes(salt, salt_sz) }) else {
        return SQLITE_ERROR;
    };
    let (Some(rounds), Ok(len)) = (u32::try_from(workfactor).ok().and_then(NonZeroU32::new), usize::try_from(key_sz))
    else {
        return SQLITE_ERROR;
    };
    if key.is_null() {
        return SQLITE_ERROR;
    }
    // SAFETY: `key` holds `key_sz` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(key, len) };
    pbkdf2::derive(alg, rounds, salt, pass, out);
    SQLITE_OK
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn cipher(
    _: *mut c_void,
    mode: c_int,
    key: *const u8,
    key_sz: c_int,
    iv: *const u8,
    input: *const u8,
    in_sz: c_int,
    out: *mut u8,
) -> c_int {
    // SAFETY: SQLCipher passes a key of `key_sz` bytes and an IV of `get_iv_sz`.
    let (Some(key), Some(iv)) = (unsafe { bytes(key, key_sz) }, unsafe { bytes(iv, BLOCK_LEN as c_int) }) else {
        return SQLITE_ERROR;
    };
    let Ok(len) = usize::try_from(in_sz) else { return SQLITE_ERROR };
    if input.is_null() || out.is_null() || len % BLOCK_LEN != 0 {
        return SQLITE_ERROR;
    }
    // SAFETY: both buffers hold `in_sz` bytes; `copy` allows them to overlap, and the
    // work is then done in place in `out` alone.
    let buf = unsafe {
        std::ptr::copy(input, out, len);
        std::slice::from_raw_parts_mut(out, len)
    };
    let done = if mode == ENCRYPT {
        cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
            .is_ok_and(|c| c.encrypt_padded_mut::<NoPadding>(buf, len).is_ok())
    } else {
        cbc::Decryptor::<Aes256>::new_from_slices(key, iv).is_ok_and(|c| c.decrypt_padded_mut::<NoPadding>(buf).is_ok())
    };
    code(done)
}

unsafe extern "C" fn get_key_sz(_: *mut c_void) -> c_int {
    KEY_LEN as c_int
}

unsafe extern "C" fn get_iv_sz(_: *mut c_void) -> c_int {
    BLOCK_LEN as c_int
}

unsafe extern "C" fn get_block_sz(_: *mut c_void) -> c_int {
    BLOCK_LEN as c_int
}

unsafe extern "C" fn get_hmac_sz(_: *mut c_void, algorithm: c_int) -> c_int {
    hmac_algorithm(algorithm).map_or(0, |a| a.digest_algorithm().output_len() as c_int)
}

unsafe extern "C" fn ctx_init(ctx: *mut *mut c_void) -> c_int {
    if !ctx.is_null() {
        // SAFETY: SQLCipher passes where to store its context; this provider needs none.
        unsafe { *ctx = std::ptr::null_mut() };
    }
    SQLITE_OK
}

unsafe extern "C" fn ctx_free(_: *mut *mut c_void) -> c_int {
    SQLITE_OK
}

unsafe extern "C" fn fips_status(_: *mut c_void) -> c_int {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AES-256-CBC, NIST SP 800-38A F.2.5 (first two blocks).
    #[test]
    fn cipher_matches_the_nist_vectors_in_both_directions() {
        let hex = |s: &str| {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
        };
        let key = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let sealed = hex("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d");
        let run = |mode, input: &[u8]| {
            let mut out = vec![0u8; input.len()];
            // SAFETY: buffers of the lengths given.
            let rc = unsafe {
                cipher(
                    std::ptr::null_mut(),
                    mode,
                    key.as_ptr(),
                    32,
                    iv.as_ptr(),
                    input.as_ptr(),
                    input.len() as c_int,
                    out.as_mut_ptr(),
                )
            };
            assert_eq!(rc, SQLITE_OK);
            out
        };
        assert_eq!(run(ENCRYPT, &plain), sealed);
        assert_eq!(run(0, &sealed), plain);
    }

    #[test]
    fn hmac_covers_both_inputs_and_sizes_match() {
        let key = [3u8; 32];
        let mut out = [0u8; 64];
        let pgno = [1u8, 0, 0, 0];
        // SAFETY: buffers of the lengths given; `out` holds the longest tag.
        let rc = unsafe {
            hmac_fn(std::ptr::null_mut(), 1, key.as_ptr(), 32, b"page".as_ptr(), 4, pgno.as_ptr(), 4, out.as_mut_ptr())
        };
        assert_eq!(rc, SQLITE_OK);
        let want = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), b"page\x01\0\0\0");
        assert_eq!(&out[..32], want.as_ref());
        // SAFETY: no pointers are read.
        assert_eq!(
            unsafe {
                [
                    get_hmac_sz(std::ptr::null_mut(), 0),
                    get_hmac_sz(std::ptr::null_mut(), 1),
                    get_hmac_sz(std::ptr::null_mut(), 2),
                ]
            },
            [20, 32, 64]
        );
    }
}
