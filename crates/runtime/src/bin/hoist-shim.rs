//! Standalone shim/init binary for tests and benchmarks; the `hoist` binary offers the
//! same entry points (`hoist shim <dir>`, `hoist dyno-init -- <argv>`).

fn main() {
    if let Some(code) = hoist_runtime::main_dispatch() {
        std::process::exit(code);
    }
    eprintln!("usage: hoist-shim shim <dyno_dir> | hoist-shim dyno-init -- <command> [args...]");
    std::process::exit(2);
}
