//! Raw PostgreSQL baselines for `mammoth bench`: the same rows the store writes, written and
//! read by plain tokio-postgres, so each store number comes with the database's own limit.
