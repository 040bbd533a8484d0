//! The native protocol's request decoder (`switchboard_server::native_request`).
//!
//! Input: the text of one frame (lossy UTF-8, as a text frame is valid UTF-8).
//!
//! Invariants: no panic; anything that is not a JSON object is refused as
//! `bad_request`; a decoded op carries what its shape promises (a valid room,
//! an unreserved event, a non-negative limit…); refusals use only the
//! documented codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::CountingAlloc;
use switchboard_server::native_request::{Op, id, object, op};
use switchboard_server::wire::{valid_event, valid_room};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let req = match object(&text) {
        Ok(req) => req,
        Err(r) => {
            assert_eq!(r.0, "bad_request");
            return;
        }
    };
    assert!(req.is_object());
    if let Some(i) = id(&req) {
        assert!(i.is_number() || i.is_string());
    }
    match op(&req) {
        Ok(Op::Join { room, .. } | Op::Presence { room } | Op::History { room, .. }) => {
            assert!(valid_room(&room));
        }
        Ok(Op::Publish { room, event, .. }) => {
            assert!(valid_room(&room) && valid_event(&event));
        }
        Ok(Op::Rpc { event: Some(event), .. }) => assert!(valid_event(&event)),
        Ok(_) => {}
        Err(r) => assert!(matches!(r.0, "bad_request" | "unknown_op"), "{r:?}"),
    }
});
