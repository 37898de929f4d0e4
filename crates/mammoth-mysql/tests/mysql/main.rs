//! The MySQL/MariaDB driver against a real server: the shared conformance suite, the model
//! check, and the ordering tests the driver owes beyond them. Needs MAMMOTH_TEST_MYSQL_URL
//! (skips with a note without it, fails under CI=true).

mod common;
mod ordering;
mod store;

mod conformance {
    mammoth_testkit::conformance_tests!({
        match super::common::factory() {
            Some(factory) => factory,
            None => return,
        }
    });
}

#[test]
fn agrees_with_the_in_memory_model() {
    if let Some(factory) = common::factory() {
        mammoth_testkit::check_against_model(factory, 48);
    }
}
