//! The RESP parser (`synod::redis::resp::parse_request`) on arbitrary bytes, as a connection's
//! buffer: requests are parsed one after another until one is incomplete or refused.
//!
//! Checked besides "never panics": each request consumes at least one byte and no more than
//! the buffer holds; arguments stay within the limits; every strict prefix of a parsed request
//! is "incomplete" (a slow client is never refused for a request it is still sending); and a
//! request's arguments, written back as a RESP array, parse to the same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synod::redis::resp::{parse_request, Protocol, Reply, MAX_ARGS, MAX_BULK_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Ok(Some(parsed)) = parse_request(&data[pos..]) {
        let rest = &data[pos..];
        assert!(
            parsed.consumed >= 1 && parsed.consumed <= rest.len(),
            "consumed {} of {} bytes",
            parsed.consumed,
            rest.len()
        );
        assert!(
            parsed.args.len() <= MAX_ARGS,
            "{} arguments",
            parsed.args.len()
        );
        assert!(parsed.args.iter().all(|arg| arg.len() <= MAX_BULK_BYTES));
        for prefix in [parsed.consumed - 1, parsed.consumed / 2] {
            assert_eq!(
                parse_request(&rest[..prefix]),
                Ok(None),
                "a {prefix}-byte prefix of a {}-byte request",
                parsed.consumed
            );
        }
        if !parsed.args.is_empty() {
            let mut encoded = Vec::new();
            Reply::bulks(parsed.args.clone()).encode(Protocol::Resp2, &mut encoded);
            let again = parse_request(&encoded)
                .expect("a re-encoded request parses")
                .expect("a re-encoded request is complete");
            assert_eq!(again.args, parsed.args);
            assert_eq!(again.consumed, encoded.len());
        }
        pos += parsed.consumed;
    }
});
