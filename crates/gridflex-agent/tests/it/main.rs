//! The agent's integration tests in one binary: each test file would otherwise link
//! the whole facade on its own.

mod agent;
mod binary;
mod conformance;
mod fleet;
mod restore_props;
mod support;
