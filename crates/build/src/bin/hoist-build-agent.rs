//! The build agent on its own (init of a build container; see `hoist_build::agent`).
//! `hoist build-agent` does the same; this binary is smaller to map into containers.

fn main() {
    std::process::exit(hoist_build::agent::main());
}
