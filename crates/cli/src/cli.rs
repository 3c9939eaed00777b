//! Argument parsing (clap derive) and dispatch to the commands.

use crate::cmd;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "hoist",
    about = "Hoist: a self-hosted Heroku. Run \"hoist help\" for the list of topics.",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// App to run the command against.
    #[arg(short = 'a', long = "app", global = true, value_name = "APP")]
    pub app: Option<String>,
    /// Git remote naming the app (default "hoist").
    #[arg(short = 'r', long = "remote", global = true, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// Print the raw API JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    // ---- auth -------------------------------------------------------------------
    /// Log in with email and password (or --token) and save the token in ~/.netrc.
    #[command(name = "login", alias = "auth:login")]
    Login {
        /// Save this API token instead of logging in with a password.
        #[arg(long)]
        token: Option<String>,
        /// Email address (prompted when missing).
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove the saved token for this API from ~/.netrc.
    #[command(name = "logout", alias = "auth:logout")]
    Logout,
    /// Print the current API token.
    #[command(name = "auth:token")]
    AuthToken,
    /// Print the email of the logged-in account.
    #[command(name = "auth:whoami", alias = "whoami")]
    AuthWhoami,
    /// Create an account (platform owner only) and print its API key.
    #[command(name = "accounts:create")]
    AccountsCreate {
        email: String,
        /// Password for "hoist login" (8+ characters).
        #[arg(long)]
        password: Option<String>,
    },

    // ---- apps -------------------------------------------------------------------
    /// List your apps.
    #[command(name = "apps", alias = "apps:list")]
    Apps {
        /// Every app you can see (all apps for the platform owner).
        #[arg(short = 'A', long)]
        all: bool,
    },
    /// Create an app (and a "hoist" git remote when inside a repository).
    #[command(name = "apps:create", alias = "create")]
    AppsCreate {
        name: Option<String>,
        /// Region: us or eu.
        #[arg(long)]
        region: Option<String>,
        /// Do not add a git remote.
        #[arg(long)]
        no_remote: bool,
        /// Buildpack to set on the new app.
        #[arg(short = 'b', long)]
        buildpack: Option<String>,
    },
    /// Open the app in a web browser.
    #[command(name = "apps:open", alias = "open")]
    AppsOpen {
        /// Path to open, e.g. /admin.
        path: Option<String>,
    },
    /// Show details of an app.
    #[command(name = "apps:info", alias = "info")]
    AppsInfo {
        /// The app (same as -a).
        #[arg(value_name = "APP")]
        name: Option<String>,
    },
    /// Permanently destroy an app.
    #[command(name = "apps:destroy", alias = "destroy")]
    AppsDestroy {
        /// The app (same as -a).
        #[arg(value_name = "APP")]
        name: Option<String>,
        /// Repeat the app name to confirm.
        #[arg(short = 'c', long)]
        confirm: Option<String>,
    },
    /// Rename an app.
    #[command(name = "apps:rename", alias = "rename")]
    AppsRename { new_name: String },

    // ---- config -----------------------------------------------------------------
    /// Show config vars.
    #[command(name = "config", alias = "config:list")]
    Config {
        /// Print KEY=value lines for a shell.
        #[arg(short = 's', long)]
        shell: bool,
    },
    /// Print one config var's value.
    #[command(name = "config:get")]
    ConfigGet {
        key: String,
        #[arg(short = 's', long)]
        shell: bool,
    },
    /// Set config vars (KEY=value ...) and restart the app.
    #[command(name = "config:set", alias = "config:add")]
    ConfigSet {
        #[arg(required = true, value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Unset config vars and restart the app.
    #[command(name = "config:unset", alias = "config:remove")]
    ConfigUnset {
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },

    // ---- releases ---------------------------------------------------------------
    /// List releases, newest first.
    #[command(name = "releases")]
    Releases {
        /// How many releases to show.
        #[arg(short = 'n', long = "num", default_value_t = 15)]
        num: usize,
    },
    /// Show one release (default: the newest).
    #[command(name = "releases:info")]
    ReleasesInfo { release: Option<String> },
    /// Roll back to a release (default: the one before the current).
    #[command(name = "rollback", alias = "releases:rollback")]
    Rollback { release: Option<String> },

    // ---- dynos ------------------------------------------------------------------
    /// List dynos.
    #[command(name = "ps")]
    Ps {
        /// Only these process types.
        types: Vec<String>,
    },
    /// Scale dynos: web=3 worker+1 web=2:standard-2x (no arguments: show the formation).
    #[command(name = "ps:scale", alias = "scale")]
    PsScale {
        #[arg(value_name = "TYPE=N[:SIZE]")]
        changes: Vec<String>,
    },
    /// Show or change dyno sizes: web=standard-2x, or a SIZE for every type.
    #[command(name = "ps:type", alias = "ps:resize")]
    PsType {
        #[arg(value_name = "[TYPE=]SIZE")]
        changes: Vec<String>,
    },
    /// Restart all dynos, a process type, or one dyno.
    #[command(name = "ps:restart", alias = "restart")]
    PsRestart {
        #[arg(value_name = "TYPE|DYNO")]
        target: Option<String>,
    },
    /// Stop a process type or one dyno.
    #[command(name = "ps:stop", aliases = ["stop", "ps:kill", "kill"])]
    PsStop {
        #[arg(value_name = "TYPE|DYNO")]
        target: String,
    },

    // ---- access, domains, maintenance, features -----------------------------------
    /// List the users who can access an app.
    #[command(name = "access")]
    Access,
    /// Give a user access to an app.
    #[command(name = "access:add")]
    AccessAdd { email: String },
    /// Remove a user's access to an app.
    #[command(name = "access:remove")]
    AccessRemove { email: String },
    /// List an app's domains.
    #[command(name = "domains")]
    Domains,
    /// Add a custom domain.
    #[command(name = "domains:add")]
    DomainsAdd { hostname: String },
    /// Remove a custom domain.
    #[command(name = "domains:remove")]
    DomainsRemove { hostname: String },
    /// Show whether maintenance mode is on.
    #[command(name = "maintenance")]
    Maintenance,
    /// Turn maintenance mode on (the router answers 503).
    #[command(name = "maintenance:on")]
    MaintenanceOn,
    /// Turn maintenance mode off.
    #[command(name = "maintenance:off")]
    MaintenanceOff,
    /// List app features.
    #[command(name = "features")]
    Features,
    /// Enable an app feature.
    #[command(name = "features:enable")]
    FeaturesEnable { feature: String },
    /// Disable an app feature.
    #[command(name = "features:disable")]
    FeaturesDisable { feature: String },

    // ---- buildpacks ---------------------------------------------------------------
    /// List an app's buildpacks.
    #[command(name = "buildpacks")]
    Buildpacks,
    /// Set the buildpack at an index (default 1).
    #[command(name = "buildpacks:set")]
    BuildpacksSet {
        url: String,
        /// 1-based position.
        #[arg(short = 'i', long)]
        index: Option<usize>,
    },
    /// Add a buildpack (at an index, or last).
    #[command(name = "buildpacks:add")]
    BuildpacksAdd {
        url: String,
        #[arg(short = 'i', long)]
        index: Option<usize>,
    },
    /// Remove a buildpack by URL or index.
    #[command(name = "buildpacks:remove")]
    BuildpacksRemove {
        url: Option<String>,
        #[arg(short = 'i', long)]
        index: Option<usize>,
    },
    /// Remove every buildpack (detect automatically again).
    #[command(name = "buildpacks:clear")]
    BuildpacksClear,

    // ---- git ----------------------------------------------------------------------
    /// Add or update the "hoist" git remote (or -r NAME) for an app.
    #[command(name = "git:remote")]
    GitRemote,
    /// Git credential helper: answers "get" with the API token.
    #[command(name = "git:credentials")]
    GitCredentials { operation: String },
    /// Clone an app's repository (with a "hoist" remote).
    #[command(name = "git:clone")]
    GitClone {
        /// Directory to clone into (default: the app name).
        directory: Option<std::path::PathBuf>,
    },

    // ---- logs, builds, run ----------------------------------------------------------
    /// Show app logs.
    #[command(name = "logs")]
    Logs {
        /// Number of lines of history.
        #[arg(short = 'n', long = "num", default_value_t = 100)]
        num: usize,
        /// Keep streaming new lines.
        #[arg(short = 't', long)]
        tail: bool,
        /// Only this dyno (web.1) or process type (web).
        #[arg(short = 'd', long = "dyno-name", alias = "ps", alias = "dyno")]
        dyno: Option<String>,
        /// Only this process type.
        #[arg(short = 'p', long = "process-type")]
        process_type: Option<String>,
        /// Only this source: app or heroku.
        #[arg(short = 's', long)]
        source: Option<String>,
    },
    /// List builds.
    #[command(name = "builds")]
    Builds {
        #[arg(short = 'n', long = "num", default_value_t = 15)]
        num: usize,
    },
    /// Show a build's output (default: the newest build).
    #[command(name = "builds:output")]
    BuildsOutput { id: Option<String> },
    /// Build and release a directory (default: the current one) without git.
    #[command(name = "deploy", alias = "builds:create")]
    Deploy {
        dir: Option<std::path::PathBuf>,
        /// Version label for the build (default: git HEAD or a timestamp).
        #[arg(long)]
        version: Option<String>,
    },
    /// Run a one-off command attached to your terminal.
    #[command(name = "run", trailing_var_arg = true)]
    Run {
        #[command(flatten)]
        opts: RunOpts,
        /// Return the command's exit status.
        #[arg(short = 'x', long)]
        exit_code: bool,
        /// Do not use a TTY.
        #[arg(long)]
        no_tty: bool,
        #[arg(required = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Run a one-off command in the background.
    #[command(name = "run:detached", trailing_var_arg = true)]
    RunDetached {
        #[command(flatten)]
        opts: RunOpts,
        /// Stream the dyno's logs.
        #[arg(short = 't', long)]
        tail: bool,
        #[arg(required = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },

    // ---- drains, add-ons ------------------------------------------------------------
    /// List log drains.
    #[command(name = "drains")]
    Drains,
    /// Add a log drain (syslog:// or https:// URL).
    #[command(name = "drains:add")]
    DrainsAdd { url: String },
    /// Remove a log drain by URL or token.
    #[command(name = "drains:remove")]
    DrainsRemove { target: String },
    /// List add-ons.
    #[command(name = "addons")]
    Addons {
        #[arg(short = 'A', long)]
        all: bool,
    },
    /// Create an add-on: SERVICE:PLAN.
    #[command(name = "addons:create", alias = "addons:add")]
    AddonsCreate {
        #[arg(value_name = "SERVICE:PLAN")]
        plan: String,
        /// Attachment name (config var prefix).
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Add-on name.
        #[arg(long)]
        name: Option<String>,
        /// Provider options after "--": --key value ...
        #[arg(last = true)]
        options: Vec<String>,
    },
    /// Show an add-on.
    #[command(name = "addons:info")]
    AddonsInfo { name: String },
    /// Destroy an add-on.
    #[command(name = "addons:destroy", alias = "addons:remove")]
    AddonsDestroy {
        name: String,
        /// Repeat the app name to confirm.
        #[arg(short = 'c', long)]
        confirm: Option<String>,
    },
    /// Attach an existing add-on to an app.
    #[command(name = "addons:attach")]
    AddonsAttach {
        name: String,
        #[arg(long = "as")]
        as_name: Option<String>,
    },
    /// Detach an add-on attachment from an app.
    #[command(name = "addons:detach")]
    AddonsDetach { attachment: String },
    /// List add-on services.
    #[command(name = "addons:services")]
    AddonsServices,
    /// List a service's plans.
    #[command(name = "addons:plans")]
    AddonsPlans { service: String },
    /// Show Postgres databases.
    #[command(name = "pg:info", alias = "pg")]
    PgInfo { database: Option<String> },
    /// Open psql on the app's database.
    #[command(name = "pg:psql", alias = "psql")]
    PgPsql { database: Option<String> },
    /// Open redis-cli on the app's Redis.
    #[command(name = "redis:cli")]
    RedisCli { database: Option<String> },
}

#[derive(clap::Args, Debug)]
pub struct RunOpts {
    /// Dyno size.
    #[arg(short = 's', long)]
    pub size: Option<String>,
    /// Process type to label the dyno with.
    #[arg(long = "type")]
    pub process_type: Option<String>,
    /// Extra env vars: "A=1;B=2".
    #[arg(short = 'e', long)]
    pub env: Option<String>,
}

/// One-line descriptions of the topics, for `hoist help`.
const TOPICS: &[(&str, &str)] = &[
    ("access", "manage who can access an app"),
    ("accounts", "create accounts (platform owner)"),
    ("addons", "add-ons: databases and other backing services"),
    ("apps", "create, list, inspect, rename and destroy apps"),
    ("auth", "log in and out, show the token"),
    ("buildpacks", "the buildpacks an app builds with"),
    ("builds", "list builds and show their output"),
    ("config", "config vars"),
    ("deploy", "build and release a directory without git"),
    ("domains", "custom domains"),
    ("drains", "log drains"),
    ("features", "app features such as preboot"),
    ("git", "git remote and credential helper"),
    ("login", "log in"),
    ("logout", "log out"),
    ("logs", "show and stream app logs"),
    ("maintenance", "maintenance mode"),
    ("pg", "Postgres databases"),
    ("ps", "dynos: list, scale, resize, restart, stop"),
    ("redis", "Redis"),
    ("releases", "releases and rollback"),
    ("rollback", "roll back to a previous release"),
    ("run", "one-off dynos"),
];

fn topic_of(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// `hoist help [TOPIC | TOPIC:COMMAND]`.
fn help(what: Option<&str>) -> CliResult<()> {
    let mut cmd = Cli::command();
    match what {
        None => {
            println!("Usage: hoist <topic>[:<command>] [-a APP] [--json] [ARGS]\n");
            println!("Topics:");
            let width = TOPICS.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
            for (t, d) in TOPICS {
                println!("  {t:width$}  {d}");
            }
            println!("\nRun \"hoist help TOPIC\" for a topic's commands, \"hoist COMMAND --help\" for a command.");
            println!(
                "Environment: HOIST_API_URL (default {}), HOIST_API_KEY, HOIST_APP, HOIST_CA_FILE (the CA for \"run\"; default: the one pinned at login).",
                crate::ctx::DEFAULT_API_URL
            );
            Ok(())
        }
        Some(name)
            if name.contains(':')
                || cmd.find_subcommand(name).is_some() && !is_topic(&cmd, name) =>
        {
            let sub = cmd.find_subcommand_mut(name).ok_or_else(|| unknown(name))?;
            let mut sub = sub.clone().bin_name(format!("hoist {name}"));
            println!("{}", sub.render_long_help());
            Ok(())
        }
        Some(topic) => {
            let cmds: Vec<(String, String)> = cmd
                .get_subcommands()
                .filter(|c| topic_of(c.get_name()) == topic)
                .map(|c| {
                    (
                        c.get_name().to_string(),
                        c.get_about().map(|a| a.to_string()).unwrap_or_default(),
                    )
                })
                .collect();
            if cmds.is_empty() {
                return Err(unknown(topic));
            }
            println!("Commands in \"{topic}\":");
            let width = cmds.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (n, a) in cmds {
                println!("  hoist {n:width$}  {a}");
            }
            Ok(())
        }
    }
}

/// A name that is both a command and the prefix of other commands (`config`).
fn is_topic(cmd: &clap::Command, name: &str) -> bool {
    cmd.get_subcommands()
        .any(|c| c.get_name().starts_with(&format!("{name}:")))
}

fn unknown(name: &str) -> CliError {
    CliError::usage(format!(
        "\"{name}\" is not a hoist command. See \"hoist help\"."
    ))
}

pub fn run(args: Vec<String>) -> CliResult<()> {
    match args.get(1).map(String::as_str) {
        None | Some("help" | "--help" | "-h") => return help(args.get(2).map(String::as_str)),
        Some("version" | "--version" | "-v") => {
            println!("hoist/{}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        _ => {}
    }
    // Usage lines say "hoist" whatever path the binary was started by.
    let argv = std::iter::once("hoist".to_string()).chain(options_first(args.into_iter().skip(1)));
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return Err(clap_error(e)),
    };
    let ctx = Ctx::new(cli.json, cli.app, cli.remote)?;
    cmd::dispatch(&ctx, cli.command)
}

/// Options of `run` and `run:detached` (long, short, takes a value), the global ones
/// included.
const RUN_OPTIONS: &[(&str, Option<char>, bool)] = &[
    ("app", Some('a'), true),
    ("remote", Some('r'), true),
    ("json", None, false),
    ("env", Some('e'), true),
    ("size", Some('s'), true),
    ("type", None, true),
    // Only `run`:
    ("exit-code", Some('x'), false),
    ("no-tty", None, false),
];
/// `run:detached` shares the first six of `run`'s options and adds `--tail`.
const RUN_DETACHED_EXTRA: &[(&str, Option<char>, bool)] = &[("tail", Some('t'), false)];

/// The Heroku CLI takes `run`'s options anywhere before `--` (`heroku run bash -a
/// APP`); the words that are not its options form the command, and everything after
/// `--` goes to the dyno verbatim. Rewrites such a command line as
/// `run OPTIONS -- COMMAND` for clap; other commands are left alone (clap already
/// takes their options anywhere).
fn options_first(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut args = args.peekable();
    let mut out = Vec::new();
    // Global options may come before the command name.
    while let Some(a) = args.next_if(|a| a.starts_with('-')) {
        let takes_value = option_takes_value(RUN_OPTIONS, &a) == Some(true);
        out.push(a);
        if takes_value {
            out.extend(args.next());
        }
    }
    let Some(name) = args.next() else {
        return out;
    };
    let detached: Vec<_> = RUN_OPTIONS[..6]
        .iter()
        .chain(RUN_DETACHED_EXTRA)
        .copied()
        .collect();
    let options = match name.as_str() {
        "run" => RUN_OPTIONS,
        "run:detached" => &detached[..],
        _ => {
            out.push(name);
            out.extend(args);
            return out;
        }
    };
    out.push(name);
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        if a == "--" {
            command.extend(args.by_ref());
            break;
        }
        // `hoist run --help`; but `hoist run ls -h` is the command's.
        if command.is_empty() && (a == "--help" || a == "-h") {
            out.push(a);
            continue;
        }
        match option_takes_value(options, &a) {
            Some(takes_value) => {
                out.push(a);
                if takes_value {
                    out.extend(args.next());
                }
            }
            None => command.push(a),
        }
    }
    out.push("--".into());
    out.extend(command);
    out
}

/// `Some(takes_value)` when `arg` is one of `run`'s options spelled as a whole word
/// (`-a`, `--app`; `--app=x` and `-ax` carry their value), `None` otherwise.
fn option_takes_value(options: &[(&str, Option<char>, bool)], arg: &str) -> Option<bool> {
    if let Some(long) = arg.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        let (_, _, value) = options.iter().find(|(l, _, _)| *l == name)?;
        return Some(*value && !inline);
    }
    let mut chars = arg.strip_prefix('-')?.chars();
    let c = chars.next()?;
    let (_, _, value) = options.iter().find(|(_, s, _)| *s == Some(c))?;
    let rest = chars.as_str();
    match (value, rest.is_empty()) {
        (true, empty) => Some(empty),
        (false, true) => Some(false),
        // `-xyz` is not one of ours: part of the command.
        (false, false) => None,
    }
}

fn clap_error(e: clap::Error) -> CliError {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            CliError::Exit(0)
        }
        ErrorKind::InvalidSubcommand => {
            let name = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => "that".to_string(),
            };
            unknown(&name)
        }
        _ => CliError::usage(
            e.render()
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hoist").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_app_flag_anywhere() {
        let c = parse(&["config:set", "-a", "demo", "A=1", "B=x=y"]).unwrap();
        assert_eq!(c.app.as_deref(), Some("demo"));
        match c.command {
            Command::ConfigSet { vars } => assert_eq!(vars, vec!["A=1", "B=x=y"]),
            other => panic!("{other:?}"),
        }
        let c = parse(&["-a", "demo", "releases", "-n", "3"]).unwrap();
        assert!(matches!(c.command, Command::Releases { num: 3 }));
    }

    /// Parses like `run()` does: options of `run` first.
    fn parse_cli(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = options_first(args.iter().map(|a| a.to_string()));
        Cli::try_parse_from(std::iter::once("hoist".to_string()).chain(argv))
    }

    fn run_parts(args: &[&str]) -> (Option<String>, Vec<String>, RunOpts, bool) {
        match parse_cli(args).unwrap() {
            Cli {
                app,
                command:
                    Command::Run {
                        command,
                        opts,
                        exit_code,
                        ..
                    },
                ..
            } => (app, command, opts, exit_code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_takes_options_anywhere_like_heroku() {
        // Heroku's word order: the command first, then the options.
        let (app, command, _, _) = run_parts(&["run", "bash", "-a", "demo"]);
        assert_eq!(app.as_deref(), Some("demo"));
        assert_eq!(command, vec!["bash"]);
        let (app, command, opts, x) = run_parts(&[
            "run",
            "-e",
            "A=1",
            "rake",
            "db:migrate",
            "--app=demo",
            "-x",
            "--size",
            "standard-2x",
        ]);
        assert_eq!(app.as_deref(), Some("demo"));
        assert_eq!(command, vec!["rake", "db:migrate"]);
        assert_eq!(opts.env.as_deref(), Some("A=1"));
        assert_eq!(opts.size.as_deref(), Some("standard-2x"));
        assert!(x);
        // Words that are not run's options belong to the command.
        let (_, command, _, x) = run_parts(&["run", "-a", "demo", "ls", "-la", "/app"]);
        assert_eq!(command, vec!["ls", "-la", "/app"]);
        assert!(!x);
        // After `--` everything goes to the dyno, options included.
        let (app, command, opts, _) = run_parts(&[
            "run", "-a", "demo", "-e", "A=1", "--", "bash", "-c", "ls -la", "-a", "x",
        ]);
        assert_eq!(app.as_deref(), Some("demo"));
        assert_eq!(command, vec!["bash", "-c", "ls -la", "-a", "x"]);
        assert_eq!(opts.env.as_deref(), Some("A=1"));
        // Global options before the command name still work.
        let (app, command, _, _) = run_parts(&["-a", "demo", "run", "echo", "hi"]);
        assert_eq!(
            (app.as_deref(), command),
            (Some("demo"), vec!["echo".to_string(), "hi".into()])
        );
        match parse_cli(&["run:detached", "rake", "-a", "demo", "--tail"]).unwrap() {
            Cli {
                app,
                command: Command::RunDetached { command, tail, .. },
                ..
            } => {
                assert_eq!(app.as_deref(), Some("demo"));
                assert_eq!(command, vec!["rake"]);
                assert!(tail);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse_cli(&["run", "-a", "demo"]).is_err(),
            "a command is required"
        );
        let help = parse_cli(&["run", "--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let (_, command, _, _) = run_parts(&["run", "ls", "-h", "-a", "demo"]);
        assert_eq!(command, vec!["ls", "-h"]);
    }

    /// Every command takes `-a APP` after its own arguments (Heroku's usual order).
    #[test]
    fn app_option_after_the_arguments_of_every_command() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            // One plausible value for each required positional.
            let mut args = vec![name.to_string()];
            for arg in sub.get_positionals() {
                if arg.is_required_set() {
                    args.push(if name.starts_with("config:set") {
                        "K=v".into()
                    } else {
                        "x".into()
                    });
                }
            }
            args.extend(["-a".to_string(), "demo".to_string()]);
            let argv = options_first(args.clone().into_iter());
            let parsed = Cli::try_parse_from(std::iter::once("hoist".to_string()).chain(argv))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(parsed.app.as_deref(), Some("demo"), "{args:?}");
        }
    }

    #[test]
    fn unknown_command_message() {
        let e = clap_error(parse(&["foo"]).unwrap_err());
        assert_eq!(
            e.to_string(),
            "\"foo\" is not a hoist command. See \"hoist help\"."
        );
        assert_eq!(e.exit_code(), 1);
        // Usage errors exit 1, not clap's 2.
        let e = clap_error(parse(&["config:set"]).unwrap_err());
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn aliases_and_scale_args() {
        assert!(matches!(
            parse(&["scale", "web=1"]).unwrap().command,
            Command::PsScale { .. }
        ));
        assert!(matches!(
            parse(&["ps:scale", "worker-1"]).unwrap().command,
            Command::PsScale { .. }
        ));
        assert!(matches!(
            parse(&["whoami"]).unwrap().command,
            Command::AuthWhoami
        ));
        let c = parse(&["logs", "--ps", "web.1", "-n", "5"]).unwrap();
        assert!(
            matches!(c.command, Command::Logs { num: 5, dyno: Some(ref d), .. } if d == "web.1")
        );
    }
}
