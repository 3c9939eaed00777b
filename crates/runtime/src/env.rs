//! The dyno's environment and the shell line that starts its command.

use std::collections::BTreeMap;
use std::path::Path;

use crate::DynoSpec;

/// Environment of the dyno's process; `app_dir` is `/app` in a container, the slug dir
/// for the process backend.
pub fn dyno_env(spec: &DynoSpec, app_dir: &str) -> BTreeMap<String, String> {
    let mut env = spec.env.clone();
    env.entry("HOME".into())
        .or_insert_with(|| app_dir.to_string());
    env.entry("PATH".into()).or_insert_with(|| {
        let app_paths = [
            "bin",
            ".heroku/bin",
            ".heroku/python/bin",
            ".heroku/node/bin",
            ".heroku/php/bin",
            "vendor/bundle/bin",
        ];
        let mut parts: Vec<String> = app_paths.iter().map(|p| format!("{app_dir}/{p}")).collect();
        parts.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(String::from));
        parts.join(":")
    });
    env.entry("DYNO".into())
        .or_insert_with(|| spec.name.clone());
    env
}

/// Shell to run the command with: bash if the stack has it (as Heroku), else sh.
pub fn shell(stack_root: &Path) -> &'static str {
    if stack_root.join("bin/bash").exists() || stack_root.join("usr/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// `-c` script: source `.profile.d/*.sh` and `.profile`, then run the command. A simple
/// command is `exec`ed so that it receives signals itself and its exit status is the
/// dyno's; compound lines run as they are.
pub fn wrapper_script(command: &str, app_dir: &str) -> String {
    let run = if is_simple_command(command) {
        format!("exec {command}")
    } else {
        command.to_string()
    };
    let dir = shell_quote(app_dir);
    format!(
        "for f in {dir}/.profile.d/*.sh; do [ -r \"$f\" ] && . \"$f\"; done; \
         [ -r {dir}/.profile ] && . {dir}/.profile; {run}"
    )
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn is_simple_command(command: &str) -> bool {
    const KEYWORDS: [&str; 14] = [
        "if", "for", "while", "until", "case", "function", "{", "!", "[[", "exec", "time",
        "select", "coproc", "((",
    ];
    if command.contains([';', '&', '|', '(', ')', '\n', '`', '<', '>', '#']) {
        return false;
    }
    // Builtins without a program of the same name cannot be `exec`ed (`exit 5`, `cd x`).
    const BUILTINS: [&str; 24] = [
        "exit", "cd", "export", "source", ".", "eval", "set", "unset", "return", "trap", "ulimit",
        "umask", "wait", "read", "alias", "shift", "let", "declare", "local", "readonly", "type",
        "hash", "builtin", "command",
    ];
    let first = command.split_whitespace().next().unwrap_or("");
    // `FOO=bar cmd` is an assignment prefix, which `exec` would treat as a command name.
    !first.is_empty()
        && !first.contains('=')
        && !KEYWORDS.contains(&first)
        && !BUILTINS.contains(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_commands_are_execed() {
        assert!(wrapper_script("bundle exec puma -p $PORT", "/app")
            .ends_with("exec bundle exec puma -p $PORT"));
        assert!(!wrapper_script("cd x && ./run", "/app").contains("exec cd"));
        assert!(!wrapper_script("FOO=1 node app.js", "/app").contains("exec FOO"));
        assert!(!wrapper_script("exec node", "/app").contains("exec exec"));
        assert!(wrapper_script("exit 5", "/app").ends_with("; exit 5"));
        assert!(!wrapper_script("cd /tmp", "/app").contains("exec cd"));
    }
}
