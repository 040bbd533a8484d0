//! Behaviour of the sans-IO codec: a client and a server `Connection` talk to
//! each other through byte buffers, with input split at every size down to one
//! byte, and every limit and close path is exercised.

use std::io::IoSlice;
use std::ops::ControlFlow;

use bytes::Bytes;
use switchboard_wire::{
    CloseCode, CloseFrame, Config, Connection, DeflateParams, Event, Message, Next, OpCode,
    ProtocolError, Role, SendError,
};

fn take_output(c: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while c.has_output() {
        let mut io = [IoSlice::new(&[]); 16];
        let n = c.output_slices(&mut io);
        let written: usize = io[..n].iter().map(|s| s.len()).sum();
        for s in &io[..n] {
            out.extend_from_slice(s);
        }
        c.consume_output(written);
    }
    out
}

/// Feeds `input` in chunks of `step` bytes, collecting events until an error.
fn feed_in_steps(
    c: &mut Connection,
    input: &[u8],
    step: usize,
) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        c.feed(chunk);
        loop {
            match c.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn pair(config: Config, deflate: Option<DeflateParams>) -> (Connection, Connection) {
    (
        Connection::new(Role::Client, config, deflate),
        Connection::new(Role::Server, config, deflate),
    )
}

/// Raw masked client frame.
fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The close frame the server queued, as read by a client.
fn close_sent_by(server: &mut Connection) -> Option<CloseFrame> {
    let bytes = take_output(server);
    let mut client = Connection::new(Role::Client, Config::default(), None);
    let (events, err) = feed_in_steps(&mut client, &bytes, bytes.len());
    assert_eq!(err, None);
    events.into_iter().find_map(|e| match e {
        Event::Close(f) => f,
        _ => None,
    })
}

fn failure_code(input: &[u8], config: Config) -> (ProtocolError, CloseCode) {
    let mut server = Connection::new(Role::Server, config, None);
    let (_, err) = feed_in_steps(&mut server, input, input.len());
    let err = err.expect("the input must fail the connection");
    let close = close_sent_by(&mut server).expect("a close frame with a code");
    assert!(server.is_failed());
    (err, close.code)
}

#[test]
fn messages_survive_every_input_split_in_both_directions() {
    let messages = vec![
        Message::text("hello"),
        Message::text(""),
        Message::binary(vec![0u8; 0]),
        Message::text("κόσμε 𝄞".repeat(50)),
        Message::binary((0..70_000u32).map(|i| i as u8).collect::<Vec<_>>()),
    ];
    for deflate in [None, Some(DeflateParams::default())] {
        for step in [1, 2, 3, 7, 64, 1000, usize::MAX] {
            let (mut client, mut server) = pair(Config::default(), deflate);
            for m in &messages {
                client.send(m.clone()).unwrap();
                server.send(m.clone()).unwrap();
            }
            let to_server = take_output(&mut client);
            let to_client = take_output(&mut server);
            let (got, err) = feed_in_steps(&mut server, &to_server, step);
            assert_eq!(err, None);
            assert_eq!(
                got,
                messages
                    .iter()
                    .cloned()
                    .map(Event::Message)
                    .collect::<Vec<_>>()
            );
            let (got, err) = feed_in_steps(&mut client, &to_client, step);
            assert_eq!(err, None);
            assert_eq!(got.len(), messages.len(), "deflate {deflate:?} step {step}");
        }
    }
}

#[test]
fn fragments_with_interleaved_pings_reassemble_and_pings_get_pongs() {
    let (mut client, mut server) = pair(Config::default(), None);
    client
        .send_fragment(OpCode::Text, false, Bytes::from_static(b"fra"))
        .unwrap();
    client.send_ping(Bytes::from_static(b"p1")).unwrap();
    client
        .send_fragment(
            OpCode::Continuation,
            false,
            Bytes::from_static("gm€".as_bytes()),
        )
        .unwrap();
    client.send_ping(Bytes::from_static(b"p2")).unwrap();
    client
        .send_fragment(OpCode::Continuation, true, Bytes::from_static(b"ents"))
        .unwrap();
    let input = take_output(&mut client);
    for step in [1, 5, usize::MAX] {
        let mut server = Connection::new(Role::Server, Config::default(), None);
        let (events, err) = feed_in_steps(&mut server, &input, step);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                Event::Ping(Bytes::from_static(b"p1")),
                Event::Ping(Bytes::from_static(b"p2")),
                Event::Message(Message::text("fragm€ents")),
            ]
        );
        let pongs = take_output(&mut server);
        let (events, _) = feed_in_steps(&mut client, &pongs, 1);
        assert_eq!(
            events,
            vec![
                Event::Pong(Bytes::from_static(b"p1")),
                Event::Pong(Bytes::from_static(b"p2"))
            ]
        );
    }
    let _ = take_output(&mut server);
}

#[test]
fn masking_rules_are_enforced_for_both_roles() {
    let (e, code) = failure_code(&[0x81, 0x02, b'h', b'i'], Config::default());
    assert_eq!((e, code), (ProtocolError::BadMasking, CloseCode::PROTOCOL));
    let mut client = Connection::new(Role::Client, Config::default(), None);
    let (_, err) = feed_in_steps(&mut client, &client_frame(0x81, b"hi"), 100);
    assert_eq!(err, Some(ProtocolError::BadMasking));
}

#[test]
fn protocol_violations_close_with_1002() {
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (client_frame(0x81 | 0x40, b"x"), ProtocolError::ReservedBits),
        (client_frame(0x81 | 0x20, b"x"), ProtocolError::ReservedBits),
        (client_frame(0x83, b"x"), ProtocolError::UnknownOpcode(3)),
        (client_frame(0x8b, b""), ProtocolError::UnknownOpcode(0xb)),
        (
            client_frame(0x89, &[0u8; 126]),
            ProtocolError::BadControlFrame,
        ),
        (client_frame(0x09, b"p"), ProtocolError::BadControlFrame),
        (client_frame(0x80, b"cont"), ProtocolError::BadFragmentation),
        (
            [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(),
            ProtocolError::BadFragmentation,
        ),
        (client_frame(0x88, &[0x03]), ProtocolError::BadClose),
    ];
    for (input, expected) in cases {
        let (e, code) = failure_code(&input, Config::default());
        assert_eq!(e, expected);
        assert_eq!(code, CloseCode::PROTOCOL, "{e}");
    }
}

#[test]
fn invalid_close_codes_are_refused_and_valid_ones_echoed() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000,
    ] {
        let (e, close) = failure_code(&client_frame(0x88, &code.to_be_bytes()), Config::default());
        assert_eq!(
            (e, close),
            (ProtocolError::BadClose, CloseCode::PROTOCOL),
            "{code}"
        );
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
    ] {
        let mut server = Connection::new(Role::Server, Config::default(), None);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"reason");
        let (events, err) = feed_in_steps(&mut server, &client_frame(0x88, &payload), 1);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![Event::Close(Some(CloseFrame::new(
                CloseCode(code),
                "reason"
            )))]
        );
        assert_eq!(close_sent_by(&mut server).unwrap().code, CloseCode(code));
        assert!(server.close_sent() && server.close_received());
    }
}

#[test]
fn close_without_code_is_answered_with_an_empty_close() {
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let (events, _) = feed_in_steps(&mut server, &client_frame(0x88, b""), 1);
    assert_eq!(events, vec![Event::Close(None)]);
    assert_eq!(take_output(&mut server), vec![0x88, 0x00]);
}

#[test]
fn close_reason_must_be_utf8() {
    let (e, code) = failure_code(
        &client_frame(0x88, &[0x03, 0xe8, 0xce, 0xba, 0xff]),
        Config::default(),
    );
    assert_eq!(
        (e, code),
        (ProtocolError::InvalidUtf8, CloseCode::INVALID_DATA)
    );
}

#[test]
fn locally_initiated_close_then_reply_completes_and_later_data_is_ignored() {
    let (mut client, mut server) = pair(Config::default(), None);
    server.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "drain")));
    server.close(None); // idempotent
    assert_eq!(server.send(Message::text("late")), Err(SendError::Closed));
    let bytes = take_output(&mut server);
    let (events, _) = feed_in_steps(&mut client, &bytes, 1);
    assert_eq!(
        events,
        vec![Event::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "drain"
        )))]
    );
    let reply = take_output(&mut client);
    let mut input = reply;
    input.extend(client_frame(0x81, b"after close"));
    let (events, err) = feed_in_steps(&mut server, &input, 3);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![Event::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            ""
        )))]
    );
    assert!(!server.has_output(), "no second close frame");
}

#[test]
fn invalid_utf8_fails_fast_inside_a_partial_frame() {
    // Header declares 100 bytes; only 10 arrive, the 6th is invalid.
    let mut payload = b"hello".to_vec();
    payload.push(0xff);
    payload.extend_from_slice(&[b'a'; 94]);
    let frame = client_frame(0x81, &payload);
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let (_, err) = feed_in_steps(&mut server, &frame[..6 + 10], 1);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    assert_eq!(
        close_sent_by(&mut server).unwrap().code,
        CloseCode::INVALID_DATA
    );
}

#[test]
fn invalid_utf8_across_fragments_fails_at_the_fragment() {
    // "€" is E2 82 AC; split it, then corrupt the continuation byte.
    let first = client_frame(0x01, &[b'a', 0xe2]);
    let second = client_frame(0x00, &[0x28]);
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let (_, err) = feed_in_steps(&mut server, &[first.clone(), second].concat(), 1);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    // An incomplete code point at the end of the message is invalid too.
    let last = client_frame(0x80, &[0x82]);
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let (_, err) = feed_in_steps(&mut server, &[first, last].concat(), 1);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn frame_limit_is_checked_on_the_declared_length_before_payload() {
    let config = Config::default().max_frame_size(1000);
    let frame = client_frame(0x82, &[0u8; 1001]);
    // Only the header (2 + 2 + 4 bytes): the payload never arrives.
    let (e, code) = failure_code(&frame[..8], config);
    assert_eq!(code, CloseCode::TOO_BIG);
    assert_eq!(
        e,
        ProtocolError::FrameTooBig {
            len: 1001,
            limit: 1000
        }
    );
    // A 2^63-1 declaration is refused from its header alone.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let (_, code) = failure_code(&huge, Config::default());
    assert_eq!(code, CloseCode::TOO_BIG);
}

#[test]
fn message_limit_counts_all_fragments() {
    let config = Config::default().max_message_size(10);
    let input = [client_frame(0x02, &[0; 6]), client_frame(0x80, &[0; 5])].concat();
    let (e, code) = failure_code(&input[..input.len() - 5], config);
    assert_eq!(
        (e, code),
        (
            ProtocolError::MessageTooBig { limit: 10 },
            CloseCode::TOO_BIG
        )
    );
    let ok = [client_frame(0x02, &[0; 6]), client_frame(0x80, &[0; 4])].concat();
    let mut server = Connection::new(Role::Server, config, None);
    assert_eq!(feed_in_steps(&mut server, &ok, 1).1, None);
}

#[test]
fn fragment_count_limit_stops_empty_continuation_floods() {
    let config = Config::default().max_fragments(100);
    let mut input = client_frame(0x01, b"");
    for _ in 0..200 {
        input.extend(client_frame(0x00, b""));
    }
    let (e, code) = failure_code(&input, config);
    assert_eq!(
        (e, code),
        (
            ProtocolError::TooManyFragments { limit: 100 },
            CloseCode::POLICY
        )
    );
}

#[test]
fn inflated_size_counts_against_the_message_limit() {
    let config = Config::default().max_message_size(64 * 1024);
    let (mut client, _) = pair(config, Some(DeflateParams::default()));
    client.send(Message::binary(vec![0u8; 1 << 20])).unwrap();
    let bomb = take_output(&mut client);
    assert!(
        bomb.len() < 64 * 1024,
        "the compressed form is small: {}",
        bomb.len()
    );
    let mut server = Connection::new(Role::Server, config, Some(DeflateParams::default()));
    let (_, err) = feed_in_steps(&mut server, &bomb, 4096);
    assert_eq!(err, Some(ProtocolError::MessageTooBig { limit: 64 * 1024 }));
    assert_eq!(close_sent_by(&mut server).unwrap().code, CloseCode::TOO_BIG);
}

#[test]
fn rsv1_without_negotiated_deflate_is_refused() {
    let (e, _) = failure_code(&client_frame(0xc1, b"x"), Config::default());
    assert_eq!(e, ProtocolError::ReservedBits);
}

#[test]
fn control_frames_cannot_exceed_125_bytes_when_sent() {
    let mut c = Connection::new(Role::Server, Config::default(), None);
    assert_eq!(
        c.send_ping(Bytes::from(vec![0u8; 126])),
        Err(SendError::ControlTooLong)
    );
    assert_eq!(c.send_ping(Bytes::from(vec![0u8; 125])), Ok(()));
}

#[test]
fn idle_connections_release_their_buffers() {
    let (mut client, mut server) = pair(Config::default(), None);
    client.send(Message::binary(vec![1u8; 5000])).unwrap();
    let input = take_output(&mut client);
    let (events, _) = feed_in_steps(&mut server, &input, 700);
    assert_eq!(events.len(), 1);
    server.send(Message::text("reply")).unwrap();
    let _ = take_output(&mut server);
    server.release_idle_buffers();
    assert_eq!(server.read_buffer().capacity(), 0);
    assert!(
        std::mem::size_of::<Connection>() <= 104,
        "{}",
        std::mem::size_of::<Connection>()
    );
}

#[test]
fn a_limit_above_4_gib_acts_as_4_gib() {
    // A masked binary frame declaring 5 GiB (64-bit length), no payload.
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&(5u64 << 30).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    let config = Config::default()
        .max_frame_size(usize::MAX)
        .max_message_size(usize::MAX);
    let (err, code) = failure_code(&head, config);
    assert_eq!(
        err,
        ProtocolError::FrameTooBig {
            len: 5 << 30,
            limit: u32::MAX as usize
        }
    );
    assert_eq!(code, CloseCode::TOO_BIG);
    // Just under the cap the frame is accepted: the connection waits for it.
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&(3u64 << 30).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    let mut server = Connection::new(Role::Server, config, None);
    let (events, err) = feed_in_steps(&mut server, &head, head.len());
    assert_eq!((events.len(), err), (0, None));
    assert!(!server.is_failed());
}

#[test]
fn an_idle_connection_keeps_no_share_of_its_last_frame() {
    // A frame that arrives whole sizes the read buffer exactly: once the
    // message is split off, the buffer is empty with no room left, yet it
    // still shares the message's allocation.
    let (mut client, mut server) = pair(Config::default(), None);
    client.send(Message::text("40")).unwrap();
    let input = take_output(&mut client);
    server.feed(&input);
    let Some(Event::Message(Message::Text(text))) = server.next_event().unwrap() else {
        panic!("no text message");
    };
    let bytes = text.into_bytes();
    assert!(server.read_buffer().is_empty());
    server.release_idle_buffers();
    assert!(
        bytes.is_unique(),
        "the connection still holds a share of the last frame's buffer"
    );
}

/// Echoes every message of `input` (fed in chunks of `step` bytes) through
/// [`Connection::next_event_with`]: what is lent in place is answered with
/// `Replies::send_slice`, other messages with `Connection::send`. Returns the
/// events (lent messages copied out), the error if any, how many messages
/// were lent, and the output.
fn echo_in_place(
    input: &[u8],
    step: usize,
    deflate: Option<DeflateParams>,
) -> (Vec<Event>, Option<ProtocolError>, usize, Vec<u8>) {
    let mut c = Connection::new(Role::Server, Config::default(), deflate);
    let (mut events, mut lent) = (Vec::new(), 0);
    for chunk in input.chunks(step.max(1)) {
        c.feed(chunk);
        loop {
            let next = c.next_event_with(|m, replies| {
                lent += 1;
                let owned = match m.as_text() {
                    Some(t) => Message::text(t.to_owned()),
                    None => Message::binary(m.payload().to_vec()),
                };
                assert_eq!(owned.as_message_ref().payload(), m.payload());
                replies.send_slice(m.opcode(), m.payload()).unwrap();
                events.push(Event::Message(owned));
                ControlFlow::<()>::Continue(())
            });
            match next {
                Ok(Next::Event(Event::Message(m))) => {
                    c.send(m.clone()).unwrap();
                    events.push(Event::Message(m));
                }
                Ok(Next::Event(ev)) => events.push(ev),
                Ok(Next::Stopped(())) => unreachable!("the callback never breaks"),
                Ok(Next::NeedInput) => break,
                Err(e) => return (events, Some(e), lent, take_output(&mut c)),
            }
        }
    }
    (events, None, lent, take_output(&mut c))
}

/// The same echo through [`Connection::next_event`].
fn echo_by_event(
    input: &[u8],
    step: usize,
    deflate: Option<DeflateParams>,
) -> (Vec<Event>, Option<ProtocolError>, Vec<u8>) {
    let mut c = Connection::new(Role::Server, Config::default(), deflate);
    let mut events = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        c.feed(chunk);
        loop {
            match c.next_event() {
                Ok(Some(Event::Message(m))) => {
                    c.send(m.clone()).unwrap();
                    events.push(Event::Message(m));
                }
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e), take_output(&mut c)),
            }
        }
    }
    (events, None, take_output(&mut c))
}

#[test]
fn messages_lent_in_place_decode_and_answer_like_owned_events() {
    // Whole frames, a fragmented text with a ping inside, a large binary, one
    // above the lending limit (8 KiB), a close, then data after the close
    // (ignored).
    let mut input = Vec::new();
    input.extend(client_frame(0x81, b"hello"));
    input.extend(client_frame(0x82, &[]));
    input.extend(client_frame(0x01, "κόσ".as_bytes()));
    input.extend(client_frame(0x89, b"p"));
    input.extend(client_frame(0x80, "με".as_bytes()));
    input.extend(client_frame(
        0x82,
        &(0..3000u32).map(|i| i as u8).collect::<Vec<_>>(),
    ));
    input.extend(client_frame(0x81, &"𝄞".repeat(40).into_bytes()));
    input.extend(client_frame(
        0x82,
        &(0..9000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    ));
    input.extend(client_frame(0x88, &1000u16.to_be_bytes()));
    input.extend(client_frame(0x81, b"after the close"));
    for step in [1, 2, 3, 7, 64, 1000, usize::MAX] {
        let (events, err, lent, out) = echo_in_place(&input, step, None);
        let (want, want_err, want_out) = echo_by_event(&input, step, None);
        assert_eq!((&events, &err), (&want, &want_err), "step {step}");
        assert_eq!(out, want_out, "step {step}");
        assert_eq!(events.len(), 8, "6 messages, a ping and the close");
        if step == usize::MAX {
            // Everything arrived at once: the single-frame messages are lent,
            // except the one above 8 KiB (an event, to be sent by reference).
            assert_eq!(lent, 4);
        }
    }
    // With permessage-deflate a compressed message is decoded as an event, an
    // uncompressed one is lent, and a large answer is compressed either way.
    let (mut client, _) = pair(Config::default(), Some(DeflateParams::default()));
    client.send(Message::text("z".repeat(500))).unwrap();
    client
        .send_data(OpCode::Binary, Bytes::from_static(b"hi"))
        .unwrap();
    let input = take_output(&mut client);
    let deflate = Some(DeflateParams::default());
    let (events, err, lent, out) = echo_in_place(&input, usize::MAX, deflate);
    let (want, want_err, want_out) = echo_by_event(&input, usize::MAX, deflate);
    assert_eq!((events, err, out), (want, want_err, want_out));
    assert_eq!(lent, 1);
}

#[test]
fn a_message_lent_in_place_is_checked_and_a_break_stops_after_it() {
    // Invalid UTF-8 in a whole text frame fails the connection with 1007.
    let mut server = Connection::new(Role::Server, Config::default(), None);
    server.feed(&client_frame(0x81, &[0xff, 0xfe]));
    let err = server
        .next_event_with(|_, _| ControlFlow::<()>::Continue(()))
        .expect_err("invalid UTF-8");
    assert_eq!(err, ProtocolError::InvalidUtf8);
    assert_eq!(
        close_sent_by(&mut server).map(|f| f.code),
        Some(CloseCode::INVALID_DATA)
    );
    // An unmasked frame from a client is refused before anything is lent.
    let mut server = Connection::new(Role::Server, Config::default(), None);
    server.feed(&[0x81, 0x02, b'h', b'i']);
    let mut called = false;
    let err = server.next_event_with(|_, _| {
        called = true;
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(err.unwrap_err(), ProtocolError::BadMasking);
    assert!(!called);
    // A break returns its value; the message it broke on is consumed and the
    // next one is decoded by the following call.
    let mut server = Connection::new(Role::Server, Config::default(), None);
    server.feed(&client_frame(0x81, b"one"));
    server.feed(&client_frame(0x81, b"two"));
    let first = server.next_event_with(|m, _| ControlFlow::Break(m.payload().to_vec()));
    assert!(matches!(first, Ok(Next::Stopped(ref p)) if p == b"one"));
    let second = server.next_event_with(|m, _| ControlFlow::Break(m.payload().to_vec()));
    assert!(matches!(second, Ok(Next::Stopped(ref p)) if p == b"two"));
    assert!(matches!(
        server.next_event_with(|_, _| ControlFlow::<()>::Continue(())),
        Ok(Next::NeedInput)
    ));
    // Replies refuse data once our close is queued.
    let mut server = Connection::new(Role::Server, Config::default(), None);
    server.close(None);
    server.feed(&client_frame(0x81, b"late"));
    let refused = server.next_event_with(|m, replies| {
        ControlFlow::Break(replies.send_slice(m.opcode(), m.payload()))
    });
    assert!(matches!(refused, Ok(Next::Stopped(Err(SendError::Closed)))));
}

#[test]
fn parts_are_sent_as_their_concatenation() {
    let big = vec![b'x'; 3000];
    for parts in [
        vec![&b"43"[..], b"7", b"[", b"\"a\"]"],
        vec![&b"43"[..], b"12", b"[", &big[..], b"]"],
        vec![],
    ] {
        let joined = parts.concat();
        for (role, deflate) in [
            (Role::Server, None),
            (Role::Server, Some(DeflateParams::default())),
            (Role::Client, None),
        ] {
            let mut by_parts = Connection::new(role, Config::default(), deflate);
            let mut whole = Connection::new(role, Config::default(), deflate);
            by_parts.replies().send_parts(OpCode::Text, &parts).unwrap();
            whole.replies().send_slice(OpCode::Text, &joined).unwrap();
            // Read back by the other side: the same message either way.
            let peer = match role {
                Role::Server => Role::Client,
                Role::Client => Role::Server,
            };
            let read = |c: &mut Connection| {
                let bytes = take_output(c);
                let mut reader = Connection::new(peer, Config::default(), deflate);
                feed_in_steps(&mut reader, &bytes, bytes.len())
            };
            let (got, err) = read(&mut by_parts);
            assert_eq!(err, None);
            assert_eq!(got, read(&mut whole).0);
            assert_eq!(
                got,
                vec![Event::Message(Message::text(
                    String::from_utf8(joined.clone()).unwrap()
                ))]
            );
        }
    }
}
