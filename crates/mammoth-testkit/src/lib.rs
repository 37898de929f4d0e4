//! mammoth-testkit (work in progress).
