//! One integration-test binary (links once): every module starts real `hoist server`
//! processes on free loopback ports and drives them over HTTP, git and the CLIs.

mod addons;
mod api;
mod deploy;
mod dynos;
mod harness;
mod heroku_cli;
mod logs;
mod one_off_sessions;
mod router_tls;
mod scripts;
