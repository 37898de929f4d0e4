//! Raw MySQL baselines for `mammoth bench`.
