//! permessage-deflate (RFC 7692): negotiation and the per-connection codec.

pub(crate) mod codec;
pub mod header;
pub mod params;

pub use params::{DeflateConfig, DeflateParams, NegotiationError};
