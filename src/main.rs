//! The `raftbed` command. Everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    raftbed::cli::main()
}
