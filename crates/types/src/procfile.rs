//! Procfile parsing: `type: command` lines.

use crate::names::validate_process_type;
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProcfileError {
    #[error("Procfile line {line}: expected `type: command`")]
    Syntax { line: usize },
    #[error("Procfile line {line}: {source}")]
    BadName {
        line: usize,
        source: crate::names::NameError,
    },
    #[error("Procfile line {line}: process type {name:?} has an empty command")]
    EmptyCommand { line: usize, name: String },
    #[error("Procfile line {line}: process type {name:?} is declared twice")]
    Duplicate { line: usize, name: String },
    #[error("Procfile is larger than 64 KB")]
    TooLarge,
}

/// Parses a Procfile. Blank lines and `#` comments are skipped, like Heroku's parser.
pub fn parse_procfile(text: &str) -> Result<BTreeMap<String, String>, ProcfileError> {
    if text.len() > 64 * 1024 {
        return Err(ProcfileError::TooLarge);
    }
    let mut types = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, command) = trimmed
            .split_once(':')
            .ok_or(ProcfileError::Syntax { line })?;
        let name = name.trim();
        validate_process_type(name).map_err(|source| ProcfileError::BadName { line, source })?;
        let command = command.trim();
        if command.is_empty() {
            return Err(ProcfileError::EmptyCommand {
                line,
                name: name.to_string(),
            });
        }
        if types
            .insert(name.to_string(), command.to_string())
            .is_some()
        {
            return Err(ProcfileError::Duplicate {
                line,
                name: name.to_string(),
            });
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_and_commands() {
        let p = parse_procfile("web: bundle exec puma -p $PORT\n# c\n\nworker:  ruby w.rb  \n")
            .unwrap();
        assert_eq!(p["web"], "bundle exec puma -p $PORT");
        assert_eq!(p["worker"], "ruby w.rb");
    }

    #[test]
    fn rejects_malformed_procfiles() {
        assert_eq!(
            parse_procfile("web"),
            Err(ProcfileError::Syntax { line: 1 })
        );
        assert!(matches!(
            parse_procfile("web: a\nweb: b"),
            Err(ProcfileError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            parse_procfile("web:   "),
            Err(ProcfileError::EmptyCommand { .. })
        ));
        assert!(matches!(
            parse_procfile("we b: x"),
            Err(ProcfileError::BadName { .. })
        ));
    }
}
