//! MySQL driver tests.
