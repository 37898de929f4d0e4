//! The `mammoth` binary (work in progress).
fn main() {}
