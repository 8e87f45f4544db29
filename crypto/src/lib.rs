//! Encryption formats for oxidrive (pure, no I/O).
