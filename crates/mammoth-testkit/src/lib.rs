//! mammoth-testkit (work in progress).

pub mod aggregate;
