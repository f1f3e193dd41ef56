//! Joins. `stream_stream`: the windowed join of two streams
//! ([`KStream::join_stream`](crate::topology::KStream::join_stream) and its
//! left and outer forms), with [`JoinWindows`].

mod stream_stream;
mod windows;

pub use stream_stream::StreamJoinKind;
pub use windows::JoinWindows;

#[cfg(test)]
mod stream_stream_tests;
