//! The opening handshake and permessage-deflate negotiation.
//!
//! Input layout: `[mode, flags, bytes...]`; `mode % 5` picks the API:
//!
//! * 0: `parse_request` then `accept` (limits and server options from flags);
//! * 1: `ClientHandshake::parse_response` (every `@@` in the bytes is replaced
//!   by the `Sec-WebSocket-Accept` the pending handshake expects, so the
//!   success path is reachable), after a client → server → client round trip;
//! * 2: `parse_extensions` (values separated by `\n`);
//! * 3: `accept_offer`;
//! * 4: `accept_response`.
//!
//! Invariants checked (beyond no panic and no super-linear time):
//! * a parsed head is within the limits, and its bytes alone parse the same;
//! * an accepted request is a valid GET/1.1 upgrade whose accept key is right
//!   for its key; the subprotocol was both offered and supported; the 101
//!   response parses as HTTP and carries the accept key;
//! * negotiated window bits are 8..=15, the server's extension response is a
//!   single `permessage-deflate` item that a default client accepts with
//!   exactly the same parameters;
//! * every error converts to a well-formed HTTP error response;
//! * parsed extension lists respect the item/param caps, contain only tokens,
//!   and serialize back to a string that parses to the same items.
#![no_main]

use http::{Method, Version, header};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::CountingAlloc;
use switchboard_wire::DeflateConfig;
use switchboard_wire::deflate::header::{ExtensionItem, parse_extensions};
use switchboard_wire::deflate::params::{accept_offer, accept_response};
use switchboard_wire::handshake::client::{ClientHandshake, ClientOptions};
use switchboard_wire::handshake::server::{RawRequest, ServerOptions, accept, parse_request};
use switchboard_wire::handshake::{HandshakeError, HeadLimits, accept_key};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn limits(flags: u8) -> HeadLimits {
    let mut l = HeadLimits::default();
    if flags & 1 != 0 {
        l.max_headers = 8;
        l.max_head_bytes = 512;
    }
    l
}

fn deflate_config(bits: u8) -> DeflateConfig {
    let mut c = DeflateConfig::default();
    c.server_no_context_takeover = bits & 1 != 0;
    c.client_no_context_takeover = bits & 2 != 0;
    c
}

fn server_options(flags: u8) -> ServerOptions {
    let protocols = if flags & 2 != 0 {
        vec![
            "chat".to_string(),
            "superchat".to_string(),
            "v2.sb".to_string(),
        ]
    } else {
        Vec::new()
    };
    let deflate = (flags & 4 != 0).then(|| deflate_config(flags >> 3));
    ServerOptions::default()
        .with_protocols(protocols)
        .with_deflate(deflate)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Lower-cased header names and their values.
type Headers = Vec<(String, Vec<u8>)>;

/// A parsed HTTP response: status, headers, body (after the head).
fn parse_http_response(bytes: &[u8]) -> (u16, Headers, &[u8]) {
    let mut storage = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut storage);
    let status = resp.parse(bytes).expect("our response is not valid HTTP");
    let httparse::Status::Complete(len) = status else {
        panic!("our response head is incomplete: {bytes:02x?}");
    };
    let headers = resp
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    (resp.code.expect("status code"), headers, &bytes[len..])
}

fn check_error_response(e: &HandshakeError) {
    let bytes = e.to_response_bytes();
    let (code, headers, body) = parse_http_response(&bytes);
    assert_eq!(code, e.status().as_u16());
    assert!(code >= 400);
    let cl = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| String::from_utf8_lossy(v).parse::<usize>().unwrap());
    assert_eq!(cl, Some(body.len()), "content-length of the error response");
}

/// The server's extension response must be one permessage-deflate item that a
/// client with default preferences accepts with the same parameters.
fn check_server_deflate(params: &switchboard_wire::DeflateParams, response: &str) {
    for bits in [params.server_max_window_bits, params.client_max_window_bits] {
        assert!((8..=15).contains(&bits), "window bits {bits}");
    }
    let items = parse_extensions([response.as_bytes()]).expect("our response header parses");
    assert_eq!(items.len(), 1, "{response}");
    assert_eq!(items[0].name, "permessage-deflate");
    let back = accept_response([response.as_bytes()], &DeflateConfig::default());
    assert_eq!(
        back,
        Ok(Some(*params)),
        "a client reads {response:?} differently"
    );
}

fn check_request(req: &RawRequest, opts: &ServerOptions) {
    let result = accept(&req.method, req.version, &req.headers, opts);
    if switchboard_fuzz::debug() {
        eprintln!("accept: {result:?}");
    }
    match result {
        Err(e) => check_error_response(&e),
        Ok(acc) => {
            assert_eq!(req.method, Method::GET);
            assert!(req.version >= Version::HTTP_11);
            let key = req
                .headers
                .get(header::SEC_WEBSOCKET_KEY)
                .expect("accepted without a key")
                .as_bytes()
                .trim_ascii();
            assert_eq!(acc.accept, accept_key(key));
            assert_eq!(acc.accept.len(), 28);
            if let Some(p) = &acc.protocol {
                assert!(opts.protocols.contains(p), "unsupported protocol {p}");
                let offered = req
                    .headers
                    .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                    .iter()
                    .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                    .any(|t| t.trim_ascii() == p.as_bytes());
                assert!(offered, "protocol {p} was not offered");
            }
            match (&opts.deflate, &acc.deflate) {
                (None, Some(_)) => panic!("deflate negotiated though disabled"),
                (Some(cfg), Some((params, resp))) => {
                    assert!(params.server_no_context_takeover >= cfg.server_no_context_takeover);
                    assert!(params.client_no_context_takeover >= cfg.client_no_context_takeover);
                    check_server_deflate(params, resp);
                }
                _ => {}
            }
            let bytes = acc.response_bytes();
            let (code, headers, body) = parse_http_response(&bytes);
            assert_eq!(code, 101);
            assert!(body.is_empty());
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(
                get("sec-websocket-accept"),
                Some(acc.accept.clone().into_bytes())
            );
            assert_eq!(
                get("sec-websocket-protocol"),
                acc.protocol.clone().map(String::into_bytes)
            );
            assert_eq!(
                get("sec-websocket-extensions"),
                acc.deflate.as_ref().map(|(_, s)| s.clone().into_bytes())
            );
        }
    }
}

fn fuzz_request(flags: u8, data: &[u8]) {
    let lim = limits(flags);
    let parsed = parse_request(data, &lim);
    if switchboard_fuzz::debug() {
        eprintln!("parse_request: {parsed:?}");
    }
    match parsed {
        Err(e) => check_error_response(&e),
        Ok(None) => assert!(
            data.len() <= lim.max_head_bytes,
            "partial head over the cap"
        ),
        Ok(Some((req, len))) => {
            assert!(len <= data.len());
            assert!(len <= lim.max_head_bytes, "head of {len} bytes accepted");
            assert!(req.headers.len() <= lim.max_headers);
            let (again, len2) = parse_request(&data[..len], &lim)
                .expect("the head alone fails")
                .expect("the head alone is incomplete");
            assert_eq!(len2, len);
            assert_eq!(again.method, req.method);
            assert_eq!(again.path, req.path);
            assert_eq!(again.headers, req.headers);
            check_request(&req, &server_options(flags));
            check_request(&req, &server_options(flags ^ 0b110));
        }
    }
}

fn fuzz_response(flags: u8, data: &[u8]) {
    let mut opts = ClientOptions::default();
    if flags & 2 != 0 {
        opts.protocols = vec!["chat".into(), "superchat".into()];
    }
    if flags & 4 != 0 {
        opts.deflate = Some(deflate_config(flags >> 3));
    }
    let (req, pending) = ClientHandshake::new("example.com:8080", "/chat?room=1", &opts);

    // Round trip through our own server.
    let (raw, used) = parse_request(&req, &HeadLimits::default())
        .expect("our request does not parse")
        .expect("our request is incomplete");
    assert_eq!(used, req.len());
    let server = server_options(flags >> 2);
    let acc = accept(&raw.method, raw.version, &raw.headers, &server)
        .expect("our server refuses our client");
    let resp = acc.response_bytes();
    let (neg, len) = pending
        .parse_response(&resp, &HeadLimits::default())
        .expect("our client refuses our server")
        .expect("our response is incomplete");
    assert_eq!(len, resp.len());
    assert_eq!(neg.protocol, acc.protocol);
    assert_eq!(neg.deflate, acc.deflate.as_ref().map(|(p, _)| *p));

    // Arbitrary responses, with the right accept key spliced in at `@@`.
    let key = raw.headers[header::SEC_WEBSOCKET_KEY].as_bytes();
    let accept = accept_key(key);
    let mut buf = Vec::with_capacity(data.len() + 64);
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(b"@@") {
            buf.extend_from_slice(accept.as_bytes());
            i += 2;
        } else {
            buf.push(data[i]);
            i += 1;
        }
    }
    let lim = limits(flags >> 5);
    let parsed = pending.parse_response(&buf, &lim);
    if switchboard_fuzz::debug() {
        eprintln!("parse_response: {parsed:?}");
    }
    match parsed {
        Err(e) => {
            let _ = (e.to_string(), e.status());
        }
        Ok(None) => assert!(buf.len() <= lim.max_head_bytes, "partial head over the cap"),
        Ok(Some((neg, len))) => {
            assert!(len <= buf.len());
            assert!(len <= lim.max_head_bytes);
            if let Some(p) = &neg.protocol {
                assert!(opts.protocols.contains(p), "protocol {p} was not offered");
            }
            match (&opts.deflate, &neg.deflate) {
                (None, Some(_)) => panic!("deflate accepted though not offered"),
                (Some(cfg), Some(p)) => {
                    for bits in [p.server_max_window_bits, p.client_max_window_bits] {
                        assert!((8..=15).contains(&bits));
                    }
                    assert!(p.server_no_context_takeover >= cfg.server_no_context_takeover);
                    assert!(p.client_no_context_takeover >= cfg.client_no_context_takeover);
                }
                _ => {}
            }
            let (again, len2) = pending
                .parse_response(&buf[..len], &lim)
                .expect("the head alone fails")
                .expect("the head alone is incomplete");
            assert_eq!(len2, len);
            assert_eq!(again.protocol, neg.protocol);
            assert_eq!(again.deflate, neg.deflate);
        }
    }
}

fn serialize(items: &[ExtensionItem]) -> String {
    let mut s = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&item.name);
        for (k, v) in &item.params {
            s.push_str("; ");
            s.push_str(k);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
    }
    s
}

fn fuzz_extensions(data: &[u8]) {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let parsed = parse_extensions(values.iter().copied());
    if switchboard_fuzz::debug() {
        eprintln!("parse_extensions: {parsed:?}");
    }
    let Ok(items) = parsed else {
        return;
    };
    assert!(items.len() <= 32, "{} items", items.len());
    for item in &items {
        assert!(is_token(&item.name), "name {:?}", item.name);
        assert!(item.params.len() <= 16);
        for (k, v) in &item.params {
            assert!(is_token(k), "param {k:?}");
            if let Some(v) = v {
                assert!(is_token(v), "value {v:?}");
            }
        }
    }
    let text = serialize(&items);
    let back = parse_extensions([text.as_bytes()]).expect("serialized items do not parse");
    assert_eq!(back, items, "{text:?}");
}

fn fuzz_offer(flags: u8, data: &[u8]) {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let cfg = deflate_config(flags);
    let parsed = parse_extensions(values.iter().copied());
    let offer = accept_offer(values.iter().copied(), &cfg);
    if switchboard_fuzz::debug() {
        eprintln!("accept_offer: {offer:?}");
    }
    match offer {
        Err(_) => assert!(parsed.is_err(), "accept_offer fails on a valid header"),
        Ok(None) => {
            let items = parsed.expect("accept_offer takes what does not parse");
            // A bare `permessage-deflate` offer is always acceptable.
            assert!(
                !items
                    .iter()
                    .any(|i| i.name == "permessage-deflate" && i.params.is_empty()),
                "declined a plain offer"
            );
        }
        Ok(Some((params, resp))) => {
            let items = parsed.expect("accept_offer takes what does not parse");
            assert!(items.iter().any(|i| i.name == "permessage-deflate"));
            assert!(params.server_no_context_takeover >= cfg.server_no_context_takeover);
            assert!(params.client_no_context_takeover >= cfg.client_no_context_takeover);
            check_server_deflate(&params, &resp);
        }
    }
}

fn fuzz_response_ext(flags: u8, data: &[u8]) {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let cfg = deflate_config(flags);
    let parsed = parse_extensions(values.iter().copied());
    let response = accept_response(values.iter().copied(), &cfg);
    if switchboard_fuzz::debug() {
        eprintln!("accept_response: {response:?}");
    }
    match response {
        Err(_) => {}
        Ok(None) => assert_eq!(parsed.map(|v| v.len()), Ok(0)),
        Ok(Some(p)) => {
            let items = parsed.expect("accept_response takes what does not parse");
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].name, "permessage-deflate");
            for bits in [p.server_max_window_bits, p.client_max_window_bits] {
                assert!((8..=15).contains(&bits));
            }
            assert!(p.server_no_context_takeover >= cfg.server_no_context_takeover);
            assert!(p.client_no_context_takeover >= cfg.client_no_context_takeover);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (mode, flags, data) = (input[0], input[1], &input[2..]);
    match mode % 5 {
        0 => fuzz_request(flags, data),
        1 => fuzz_response(flags, data),
        2 => fuzz_extensions(data),
        3 => fuzz_offer(flags, data),
        _ => fuzz_response_ext(flags, data),
    }
});
