//! The `keyward` command line tool (all logic in the library's `cli` module).

fn main() -> std::process::ExitCode {
    keyward_client::cli::main()
}
