//! The sans-IO RFC 6455 core: frames, masking, UTF-8, close codes, and the
//! connection state machine.

pub mod close;
pub mod connection;
pub mod frame;
pub mod mask;
pub mod message;
pub(crate) mod output;
pub mod replies;
pub mod utf8;
