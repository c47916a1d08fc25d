//! Integration tests: one crate, one link step. Each module is a set of scenarios that start
//! the real `hookgate` binary through [`harness`].

mod foundation;
mod harness;
