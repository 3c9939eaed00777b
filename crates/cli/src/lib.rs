//! The `hoist` command-line client.

pub fn main(args: Vec<String>) -> i32 {
    let _ = args;
    eprintln!("not yet");
    1
}
