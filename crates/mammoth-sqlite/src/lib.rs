//! mammoth-sqlite (work in progress).
