//! Peer message decoding (`synod_net::decode_peer`) from arbitrary bytes, and the encoding
//! round trip.
//!
//! The first input byte picks the mode. Odd: the rest is a peer frame's body, decoded; whatever
//! decodes must encode and decode again to the same envelope. Even: the rest drives a generated
//! envelope (every message kind, extreme numbers included), which must survive
//! `encode_peer` then `decode_peer` unchanged.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use synod_fuzz::generate;
use synod_net::{decode_peer, encode_peer};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        if let Ok(envelope) = decode_peer(rest) {
            let again =
                decode_peer(&encode_peer(&envelope)).expect("a re-encoded envelope decodes");
            assert_eq!(again, envelope);
        }
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(to) = generate::node(&mut u) else {
            return;
        };
        let Ok(envelope) = generate::envelope(&mut u, to) else {
            return;
        };
        let decoded = decode_peer(&encode_peer(&envelope)).expect("an encoded envelope decodes");
        assert_eq!(decoded, envelope);
    }
});
