//! TLS termination for the router (behind a flag): certificates chosen per hostname by
//! SNI from a directory, HTTP/2 or HTTP/1.1 by ALPN.
//!
//! Certificate directory layout: `<hostname>.crt` (PEM chain) next to `<hostname>.key`
//! (PEM private key). A hostname may be a wildcard (`*.example.com.crt`); `default.crt`
//! answers clients whose SNI matches nothing (or that send none).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no certificates (<host>.crt with <host>.key) in {0}")]
    Empty(PathBuf),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Certificates by hostname (lowercase, no trailing dot).
#[derive(Debug, Default)]
pub struct CertStore {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads every `<host>.crt` + `<host>.key` pair of `dir`. A `.crt` without its key
    /// is an error: a half-installed certificate should not be silently skipped.
    pub fn load_dir(dir: &Path) -> Result<Self, TlsError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Read { path, source }
        };
        let mut store = CertStore::default();
        for entry in fs::read_dir(dir).map_err(read_err(dir))? {
            let path = entry.map_err(read_err(dir))?.path();
            let Some(host) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".crt"))
            else {
                continue;
            };
            let key = load_key(&path, &path.with_extension("key"))?;
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            if host == "default" {
                store.default = Some(key);
            } else {
                store.by_host.insert(host, key);
            }
        }
        if store.by_host.is_empty() && store.default.is_none() {
            return Err(TlsError::Empty(dir.to_path_buf()));
        }
        Ok(store)
    }

    /// Exact hostname, then the wildcard for its parent domain, then the default.
    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let host = sni.map(|h| h.trim_end_matches('.').to_ascii_lowercase());
        let found = host.as_deref().and_then(|h| {
            self.by_host.get(h).or_else(|| {
                let (_, parent) = h.split_once('.')?;
                self.by_host.get(&format!("*.{parent}"))
            })
        });
        found.or(self.default.as_ref()).cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

fn load_key(crt: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let invalid = |path: &Path, message: String| TlsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let pem = fs::read(crt).map_err(|source| TlsError::Read {
        path: crt.to_path_buf(),
        source,
    })?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(crt, e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid(crt, "no PEM certificate".into()));
    }
    let pem = fs::read(key).map_err(|source| TlsError::Read {
        path: key.to_path_buf(),
        source,
    })?;
    let der = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| invalid(key, e.to_string()))?
        .ok_or_else(|| invalid(key, "no PEM private key".into()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| invalid(key, e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Server configuration offering HTTP/2 and HTTP/1.1.
pub fn server_config(store: CertStore) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(store));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<CertifiedKey> {
        let k = rcgen::generate_simple_self_signed(vec!["x.test".into()]).expect("cert");
        let der = rustls::pki_types::PrivateKeyDer::try_from(k.key_pair.serialize_der())
            .expect("key der");
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).expect("signer");
        Arc::new(CertifiedKey::new(vec![k.cert.der().clone()], signer))
    }

    #[test]
    fn picks_exact_then_wildcard_then_default() {
        let (exact, wild, default) = (key(), key(), key());
        let mut s = CertStore::default();
        s.by_host.insert("www.example.test".into(), exact.clone());
        s.by_host.insert("*.example.test".into(), wild.clone());
        let pick = |s: &CertStore, h: Option<&str>| s.lookup(h);
        assert!(Arc::ptr_eq(
            &pick(&s, Some("WWW.example.test.")).unwrap(),
            &exact
        ));
        assert!(Arc::ptr_eq(
            &pick(&s, Some("api.example.test")).unwrap(),
            &wild
        ));
        // A wildcard covers one label only.
        assert!(pick(&s, Some("a.b.example.test")).is_none());
        assert!(pick(&s, None).is_none());
        s.default = Some(default.clone());
        assert!(Arc::ptr_eq(
            &pick(&s, Some("other.test")).unwrap(),
            &default
        ));
        assert!(Arc::ptr_eq(&pick(&s, None).unwrap(), &default));
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = rcgen::generate_simple_self_signed(vec!["a.test".into()]).expect("cert");
        fs::write(dir.path().join("a.test.crt"), k.cert.pem()).expect("write");
        let err = CertStore::load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a.test.key"), "{err}");
        fs::write(dir.path().join("a.test.key"), "garbage").expect("write");
        let err = CertStore::load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no PEM private key"), "{err}");
        fs::write(dir.path().join("a.test.key"), k.key_pair.serialize_pem()).expect("write");
        assert!(CertStore::load_dir(dir.path()).is_ok());
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            CertStore::load_dir(empty.path()),
            Err(TlsError::Empty(_))
        ));
    }
}
