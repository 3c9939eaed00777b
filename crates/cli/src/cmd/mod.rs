//! The commands, grouped by topic.

mod addons;
mod app_resources;
mod apps;
mod auth;
mod buildpacks;
mod builds;
mod config;
mod logs;
mod ps;
mod releases;
mod run;

use crate::cli::Command;
use crate::ctx::Ctx;
use crate::error::CliResult;

pub fn dispatch(ctx: &Ctx, command: Command) -> CliResult<()> {
    use Command as C;
    match command {
        C::Login { token, email } => auth::login(ctx, token, email),
        C::Logout => auth::logout(ctx),
        C::AuthToken => auth::token(ctx),
        C::AuthWhoami => auth::whoami(ctx),
        C::AccountsCreate { email, password } => auth::accounts_create(ctx, &email, password),
        C::GitCredentials { operation } => auth::git_credentials(ctx, &operation),

        C::Apps { all } => apps::list(ctx, all),
        C::AppsCreate {
            name,
            region,
            no_remote,
            buildpack,
        } => apps::create(ctx, name, region, no_remote, buildpack),
        C::AppsOpen { path } => apps::open(ctx, path),
        C::GitClone { directory } => apps::git_clone(ctx, directory),
        C::AppsInfo { name } => apps::info(ctx, name),
        C::AppsDestroy { name, confirm } => apps::destroy(ctx, name, confirm),
        C::AppsRename { new_name } => apps::rename(ctx, &new_name),
        C::GitRemote => apps::git_remote(ctx),

        C::Config { shell } => config::show(ctx, shell),
        C::ConfigGet { key, shell } => config::get(ctx, &key, shell),
        C::ConfigSet { vars } => config::set(ctx, &vars),
        C::ConfigUnset { keys } => config::unset(ctx, &keys),

        C::Releases { num } => releases::list(ctx, num),
        C::ReleasesInfo { release } => releases::info(ctx, release),
        C::Rollback { release } => releases::rollback(ctx, release),

        C::Ps { types } => ps::list(ctx, &types),
        C::PsScale { changes } => ps::scale(ctx, &changes),
        C::PsType { changes } => ps::resize(ctx, &changes),
        C::PsRestart { target } => ps::restart(ctx, target.as_deref()),
        C::PsStop { target } => ps::stop(ctx, &target),

        C::Access => app_resources::access(ctx),
        C::AccessAdd { email } => app_resources::access_add(ctx, &email),
        C::AccessRemove { email } => app_resources::access_remove(ctx, &email),
        C::Domains => app_resources::domains(ctx),
        C::DomainsAdd { hostname } => app_resources::domains_add(ctx, &hostname),
        C::DomainsRemove { hostname } => app_resources::domains_remove(ctx, &hostname),
        C::Maintenance => app_resources::maintenance(ctx),
        C::MaintenanceOn => app_resources::set_maintenance(ctx, true),
        C::MaintenanceOff => app_resources::set_maintenance(ctx, false),
        C::Features => app_resources::features(ctx),
        C::FeaturesEnable { feature } => app_resources::set_feature(ctx, &feature, true),
        C::FeaturesDisable { feature } => app_resources::set_feature(ctx, &feature, false),
        C::Drains => app_resources::drains(ctx),
        C::DrainsAdd { url } => app_resources::drains_add(ctx, &url),
        C::DrainsRemove { target } => app_resources::drains_remove(ctx, &target),

        C::Buildpacks => buildpacks::list(ctx),
        C::BuildpacksSet { url, index } => buildpacks::set(ctx, &url, index),
        C::BuildpacksAdd { url, index } => buildpacks::add(ctx, &url, index),
        C::BuildpacksRemove { url, index } => buildpacks::remove(ctx, url, index),
        C::BuildpacksClear => buildpacks::clear(ctx),

        C::Logs {
            num,
            tail,
            dyno,
            process_type,
            source,
        } => logs::logs(ctx, num, tail, dyno.or(process_type), source),
        C::Builds { num } => builds::list(ctx, num),
        C::BuildsOutput { id } => builds::output(ctx, id),
        C::Deploy { dir, version } => builds::deploy(ctx, dir, version),
        C::Run {
            opts,
            exit_code,
            no_tty,
            command,
        } => run::run(ctx, &opts, exit_code, no_tty, &command),
        C::RunDetached {
            opts,
            tail,
            command,
        } => run::detached(ctx, &opts, tail, &command),

        C::Addons { all } => addons::list(ctx, all),
        C::AddonsCreate {
            plan,
            as_name,
            name,
            options,
        } => addons::create(ctx, &plan, as_name, name, &options),
        C::AddonsInfo { name } => addons::info(ctx, &name),
        C::AddonsDestroy { name, confirm } => addons::destroy(ctx, &name, confirm),
        C::AddonsAttach { name, as_name } => addons::attach(ctx, &name, as_name),
        C::AddonsDetach { attachment } => addons::detach(ctx, &attachment),
        C::AddonsServices => addons::services(ctx),
        C::AddonsPlans { service } => addons::plans(ctx, &service),
        C::PgInfo { database } => addons::pg_info(ctx, database),
        C::PgPsql { database } => addons::pg_psql(ctx, database),
        C::RedisCli { database } => addons::redis_cli(ctx, database),
    }
}

/// `/apps/<app>` plus more encoded segments.
pub(crate) fn app_path(app: &str, rest: &[&str]) -> String {
    let mut p = format!("/apps/{}", crate::api::seg(app));
    for r in rest {
        p.push('/');
        p.push_str(&crate::api::seg(r));
    }
    p
}

/// Prints `msg... ` to stderr now and `done` (or the suffix) when the action ends.
pub(crate) struct Action {
    started: bool,
}

impl Action {
    pub fn start(msg: &str) -> Action {
        use std::io::Write;
        eprint!("{msg}... ");
        let _ = std::io::stderr().flush();
        Action { started: true }
    }

    pub fn done(mut self, suffix: &str) {
        self.started = false;
        if suffix.is_empty() {
            eprintln!("done");
        } else {
            eprintln!("done, {suffix}");
        }
    }
}

impl Drop for Action {
    fn drop(&mut self) {
        // The action failed: end the line so the error starts on its own.
        if self.started {
            eprintln!("!");
        }
    }
}
