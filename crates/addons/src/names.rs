//! Heroku-style add-on names and random secrets.

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "amorphous",
    "angular",
    "animated",
    "asymmetrical",
    "clean",
    "closed",
    "concentric",
    "contoured",
    "convex",
    "crystalline",
    "cubic",
    "curly",
    "curved",
    "cylindrical",
    "deep",
    "defined",
    "dimensional",
    "elliptical",
    "encircled",
    "flat",
    "fluffy",
    "graceful",
    "horizontal",
    "infinite",
    "opaque",
    "parallel",
    "perpendicular",
    "polished",
    "reticulated",
    "round",
    "rugged",
    "shaped",
    "sinuous",
    "slippery",
    "solid",
    "spherical",
    "symmetrical",
    "tetrahedral",
    "transparent",
    "triangular",
    "vertical",
];

/// `postgresql-curved-12345`: service, adjective, five digits (Heroku's format).
pub fn generate_addon_name(service: &str) -> String {
    let mut rng = rand::thread_rng();
    let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
    let number: u32 = rng.gen_range(10000..100000);
    format!("{service}-{adjective}-{number}")
}

/// `n` random bytes from the OS, hex encoded (2n chars). Used for passwords and ids.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS RNG failing is not recoverable in any useful way; fall back to
    // thread_rng (itself seeded from the OS) rather than hand out weak secrets.
    if getrandom::getrandom(&mut buf).is_err() {
        rand::thread_rng().fill(buf.as_mut_slice());
    }
    hex::encode(buf)
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::getrandom(&mut buf).is_err() {
        rand::thread_rng().fill(&mut buf[..]);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addon_name_has_heroku_shape() {
        for _ in 0..50 {
            let name = generate_addon_name("postgresql");
            let parts: Vec<&str> = name.rsplitn(3, '-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert_eq!(parts[2], "postgresql");
            assert!(ADJECTIVES.contains(&parts[1]), "{name}");
            assert_eq!(parts[0].len(), 5);
            assert!(parts[0].chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn random_hex_is_random() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
