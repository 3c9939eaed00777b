//! Domain vocabulary shared by every Hoist crate: names and their validation rules,
//! dyno sizes, Procfiles and log lines. This crate does no I/O.

pub mod domain;
pub mod log;
pub mod names;
pub mod procfile;
pub mod size;
pub mod stack;

pub use domain::{validate_custom_domain, DomainError, PlatformHosts};
pub use log::{LogLine, LogSource};
pub use names::{
    validate_app_name, validate_config_var, validate_config_var_name, validate_process_type,
    NameError, MAX_CONFIG_VALUE_BYTES,
};
pub use procfile::{parse_procfile, ProcfileError};
pub use size::DynoSize;
pub use stack::stack_name_from_os_release;
