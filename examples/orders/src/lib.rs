//! mammoth-example-orders (work in progress).
