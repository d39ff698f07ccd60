//! Client API request decoding from arbitrary bytes, the way a node's client service takes a
//! request apart: the client frame (`ClientRequest`), its payload (`ApiRequest`), and for a
//! key-value call the state-machine request (`Request::decode_validated`); snapshot chunks
//! carried in a call are left to the `snapshot_install` target.
//!
//! The first input byte picks the mode: 0 decodes the rest as a whole client frame; 1 as a
//! key-value request alone; 2 builds a request with every op and header field
//! (`synod_fuzz::generate`), wraps it in the frames as a client does, and checks the decoding
//! gives back the same request, and that validation accepts or refuses it without panicking.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use synod_fuzz::generate;
use synod_kvstore::Request;
use synod_net::ClientRequest;
use synod_wire::limits::MAX_REQUEST_BYTES;
use synod_wire::proto::api::{api_request::Call, ApiRequest, KvCall};

/// Decodes one client frame's body as the client service does; returns the key-value request
/// bytes if it carries a key-value call.
fn decode_client_frame(bytes: &[u8]) -> Option<Vec<u8>> {
    let request = ClientRequest::decode(bytes).ok()?;
    let api = ApiRequest::decode(request.payload.as_slice()).ok()?;
    match api.call? {
        Call::Kv(kv) => Some(kv.request),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Some(kv) = decode_client_frame(rest) {
                let _ = Request::decode_validated(&kv);
            }
        }
        1 => {
            let _ = Request::decode_validated(rest);
        }
        _ => {
            let mut u = Unstructured::new(rest);
            let Ok(request) = generate::request(&mut u) else {
                return;
            };
            let api = ApiRequest {
                call: Some(Call::Kv(KvCall {
                    request: request.encode_to_vec(),
                    serializable: false,
                })),
            };
            let frame = ClientRequest {
                request_id: 1,
                payload: api.encode_to_vec(),
            };
            let kv = decode_client_frame(&frame.encode_to_vec()).expect("a client frame decodes");
            match Request::decode_bounded(&kv) {
                Ok(decoded) => {
                    assert_eq!(decoded, request);
                    let _ = decoded.validate();
                }
                Err(err) => assert!(
                    kv.len() > MAX_REQUEST_BYTES,
                    "a {}-byte encoded request refused: {err}",
                    kv.len()
                ),
            }
        }
    }
});
