//! mammoth-runtime (work in progress).
