//! The `hoist` binary: `hoist server` runs the control plane, `hoist shim` is the
//! per-dyno supervisor, `hoist build-agent` is init of a build container, and every
//! other command is the CLI client.

mod githook;
mod rendezvous;
mod server;

fn main() {
    // `hoist shim` (per-dyno supervisor) and `hoist dyno-init` (PID 1 inside a dyno)
    // must run before any thread or async runtime exists: they fork.
    if let Some(code) = hoist_runtime::main_dispatch() {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("build-agent") => std::process::exit(hoist_build::agent::main()),
        Some("git-hook") => std::process::exit(githook::main(&args[2..])),
        Some("server") => {
            if let Err(e) = server::main(&args[1..]) {
                eprintln!("hoist server: {e:#}");
                std::process::exit(1);
            }
        }
        _ => std::process::exit(hoist_cli::main(args)),
    }
}
