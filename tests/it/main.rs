//! Integration tests: one crate, one link step. Each module is a set of scenarios that start
//! the real `hookgate` binary through [`harness`].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod auth;
mod delivery;
mod example_config;
mod foundation;
mod harness;
mod kafka;
mod ops;
mod parsers;
mod sessions;
