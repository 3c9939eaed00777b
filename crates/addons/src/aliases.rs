//! Heroku's names for the built-in services and their plans, so that tutorials work
//! as written: `heroku-postgresql:essential-0` is provisioned as `postgresql:mini`.
//! Every Heroku plan maps onto the Hoist plan that covers it (the largest one when
//! Hoist has nothing that big); the add-on is recorded under Hoist's name.

/// The Hoist service a Heroku service name stands for; other names are returned as is.
pub fn service_name(name: &str) -> &str {
    match name {
        "heroku-postgresql" => "postgresql",
        "heroku-redis" => "redis",
        other => other,
    }
}

/// The Hoist plan of `service` (a Hoist name) that a Heroku plan name stands for.
pub fn plan_name(service: &str, plan: &str) -> Option<&'static str> {
    // `standard-3`, `premium-14`, `private-7`, ...: a tier and a size number.
    let tier = plan
        .rsplit_once('-')
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(t, _)| t);
    match (service, plan, tier) {
        // Heroku Postgres: essential-0 is 1 GB/20 connections (mini), essential-1 is
        // 10 GB/20 (basic), essential-2 is 32 GB/40 (standard-0 covers it).
        ("postgresql", "essential-0" | "hobby-dev", _) => Some("mini"),
        ("postgresql", "essential-1" | "hobby-basic", _) => Some("basic"),
        ("postgresql", "essential-2", _) => Some("standard-0"),
        ("postgresql", _, Some("standard" | "premium" | "private" | "shield")) => {
            Some("standard-0")
        }
        // Heroku Key-Value Store: mini and premium-0..2 exist in Hoist too.
        ("redis", _, Some("premium" | "private" | "shield")) => Some("premium-2"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heroku_names_map_onto_hoist_plans() {
        assert_eq!(service_name("heroku-postgresql"), "postgresql");
        assert_eq!(service_name("heroku-redis"), "redis");
        assert_eq!(service_name("mailer"), "mailer");
        assert_eq!(plan_name("postgresql", "essential-0"), Some("mini"));
        assert_eq!(plan_name("postgresql", "essential-1"), Some("basic"));
        assert_eq!(plan_name("postgresql", "essential-2"), Some("standard-0"));
        assert_eq!(plan_name("postgresql", "standard-4"), Some("standard-0"));
        assert_eq!(plan_name("postgresql", "premium-0"), Some("standard-0"));
        assert_eq!(plan_name("redis", "premium-14"), Some("premium-2"));
        assert_eq!(plan_name("redis", "private-7"), Some("premium-2"));
        assert_eq!(plan_name("redis", "essential-0"), None);
        assert_eq!(plan_name("postgresql", "galactic"), None);
        assert_eq!(plan_name("postgresql", "standard-"), None);
        assert_eq!(plan_name("mailer", "premium-0"), None);
    }
}
