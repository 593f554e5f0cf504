//! The `keyward-keydir` binary: `migrate` or `serve`; everything else is in the library.

fn main() -> anyhow::Result<()> {
    keyward_keydir::cli::main()
}
