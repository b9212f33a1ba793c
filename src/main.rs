//! The `cosmount` binary; everything lives in `cosmount::cli`.

fn main() {
    std::process::exit(cosmount::cli::run::main());
}
