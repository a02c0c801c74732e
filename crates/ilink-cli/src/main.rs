//! The `ilink` command-line tool.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("ilink: the command-line tool is not built yet");
    std::process::exit(2);
}
