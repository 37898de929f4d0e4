//! The `mammoth` binary: the command line of the built-in order app (examples/orders). A
//! binary of your own app is the same one line with your [`mammoth_cli::App`].

use std::process::ExitCode;

fn main() -> ExitCode {
    mammoth_cli::App::orders().main()
}
