//! mammoth-bench (work in progress).
