//! Thin tokio drivers over the sans-IO core.

pub mod client;
pub mod detached;
pub mod park;
mod prefetch;
pub mod replayed;
pub mod server;
mod shrink;
pub mod stream;
pub mod tls;
pub mod websocket;

pub use client::{ConnectOptions, Target, connect};
pub use prefetch::prefetch;
pub use replayed::Replayed;
pub use shrink::shrunk_capacity;
pub use stream::MaybeTlsStream;
pub use websocket::WebSocket;
