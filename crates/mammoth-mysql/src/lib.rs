//! # mammoth-mysql
//!
//! mammoth's MySQL/MariaDB event store (work in progress).
