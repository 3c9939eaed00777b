//! Validation of names that arrive from outside (API bodies, Procfiles, CLI flags).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("Name must start with a letter, end with a letter or digit and can only contain lowercase letters, digits, and dashes (3 to 30 characters).")]
    InvalidAppName,
    #[error("Invalid config var name {0:?}: names must start with a letter or underscore and contain only letters, digits and underscores (at most 256 characters).")]
    InvalidConfigVarName(String),
    #[error("Config var {name} {reason}.")]
    InvalidConfigVarValue { name: String, reason: String },
    #[error("Invalid process type {0:?}: use letters, digits, dashes and underscores (at most 30 characters).")]
    InvalidProcessType(String),
}

/// Heroku's rule: `^[a-z][a-z0-9-]{1,28}[a-z0-9]$`.
pub fn validate_app_name(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = (3..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidAppName)
    }
}

/// Config var names must be usable as POSIX environment variable names.
pub fn validate_config_var_name(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidConfigVarName(
            name.chars().take(64).collect(),
        ))
    }
}

/// Longest config var value accepted (Heroku's limit is 32 KB per var).
pub const MAX_CONFIG_VALUE_BYTES: usize = 32 * 1024;

/// A config var as it becomes an environment variable of every dyno and build: a valid
/// name, and a value the kernel can pass (`execve` strings end at the first NUL, so such
/// a value could never reach a process) within the size limit.
pub fn validate_config_var(name: &str, value: &str) -> Result<(), NameError> {
    validate_config_var_name(name)?;
    let invalid = |reason: String| NameError::InvalidConfigVarValue {
        name: name.to_string(),
        reason,
    };
    if value.contains('\0') {
        return Err(invalid(
            "contains a NUL byte, which an environment variable cannot hold".into(),
        ));
    }
    if value.len() > MAX_CONFIG_VALUE_BYTES {
        return Err(invalid(format!(
            "is {} bytes; values are limited to 32 KB",
            value.len()
        )));
    }
    Ok(())
}

/// Process types as Heroku accepts them in a Procfile (`web`, `worker`, `clock-2`).
pub fn validate_process_type(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 30
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidProcessType(
            name.chars().take(64).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_herokus_rule() {
        for good in ["abc", "my-app", "a1b", "x23456789012345678901234567890"] {
            assert_eq!(validate_app_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ab",
            "1abc",
            "Abc",
            "abc-",
            "ab_c",
            "a b",
            "x234567890123456789012345678901",
            "ünï",
        ] {
            assert!(validate_app_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_var_values_must_fit_an_environment_variable() {
        assert!(validate_config_var("A", "").is_ok());
        assert!(validate_config_var("A", "x=y\nz \u{e9}").is_ok());
        let e = validate_config_var("SECRET", "a\0b").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Config var SECRET contains a NUL byte"),
            "{e}"
        );
        let big = "x".repeat(MAX_CONFIG_VALUE_BYTES + 1);
        assert!(validate_config_var("A", &big).is_err());
        assert!(validate_config_var("A", &big[1..]).is_ok());
        assert!(validate_config_var("1A", "v").is_err());
    }

    #[test]
    fn config_var_names() {
        for good in ["FOO", "_X", "database_url", "A1"] {
            assert!(validate_config_var_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "é"] {
            assert!(validate_config_var_name(bad).is_err(), "{bad}");
        }
        assert!(validate_config_var_name(&"A".repeat(257)).is_err());
    }

    #[test]
    fn process_types() {
        assert!(validate_process_type("web").is_ok());
        assert!(validate_process_type("clock-2").is_ok());
        assert!(validate_process_type("").is_err());
        assert!(validate_process_type("we b").is_err());
        assert!(validate_process_type("-x").is_err());
    }
}
