//! The stack's name. Hoist has one stack: the host's distribution, whose packages are
//! the runtimes that builds and dynos use. Its name is derived from os-release(5), so
//! the API (`stack` of apps, `GET /stacks`), `$STACK` and the build banner all say what
//! the stack really is (e.g. `debian-12`), not a Heroku stack it only resembles.

/// `<ID>-<VERSION_ID>` from the text of `/etc/os-release`, e.g. `debian-12`;
/// `<ID>` alone when there is no version (rolling releases), `linux` when there is
/// no `ID` (os-release's own default).
pub fn stack_name_from_os_release(text: &str) -> String {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            let v: String = v
                .chars()
                .map(|c| c.to_ascii_lowercase())
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            (!v.is_empty()).then_some(v)
        })
    };
    match (field("ID"), field("VERSION_ID")) {
        (Some(id), Some(version)) => format!("{id}-{version}"),
        (Some(id), None) => id,
        (None, _) => "linux".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_host_distribution() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
        assert_eq!(stack_name_from_os_release(debian), "debian-12");
        let ubuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(stack_name_from_os_release(ubuntu), "ubuntu-24.04");
        assert_eq!(stack_name_from_os_release("ID=arch\n"), "arch");
        assert_eq!(stack_name_from_os_release(""), "linux");
        assert_eq!(
            stack_name_from_os_release("ID=\"we ird/$\"\nVERSION_ID=1\n"),
            "weird-1"
        );
    }
}
