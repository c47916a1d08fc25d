//! Integration tests: one crate, one link step. Each module is a set of scenarios that start
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! the real `hookgate` binary through [`harness`].

mod foundation;
mod harness;
