//! FNV-1a, 64 bits, with length-prefixed fields: the state hash of the state machine and of
//! snapshot streams (which must agree, so both use this one definition), and the checksums of
//! backup files (`synod snapshot save`). Not cryptographic: it catches corruption, not forgery.

/// An FNV-1a hasher over length-prefixed fields, so field boundaries count. The hash so far is
/// the `u64` inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Hash one field: its length (8 bytes, big-endian), then its bytes.
    pub fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_be_bytes());
        self.bytes(bytes);
    }
}
