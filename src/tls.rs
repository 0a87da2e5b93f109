//! Listener certificates a reload can replace: every TLS listener resolves its
//! certificate through a [`Certs`], which holds the one in force. Handshakes
//! that start after [`Certs::set`] use the new certificate; open connections
//! keep theirs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::tls::sign::CertifiedKey;
use pingora_core::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

use crate::config::Tls;

/// The certificate and key of one TLS listener.
#[derive(Debug)]
pub struct Certs(ArcSwap<CertifiedKey>);

/// Reads a listener's certificate chain and key (PEM), checking that the key is
/// the certificate's: a mismatch would fail every handshake instead of the load.
pub fn load(tls: &Tls) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = (tls.cert.to_string_lossy(), tls.key.to_string_lossy());
    let read = pingora_core::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("{cert} or {key}: {}", e.root_cause()))?;
    let Some((chain, key_der)) = read else {
        return Err(format!(
            "{cert} holds no certificate or {key} no private key (PEM)"
        ));
    };
    pingora_core::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider is installed".to_owned())?;
    let chain = chain.into_iter().map(|c| c.into_owned()).collect();
    CertifiedKey::from_der(chain, key_der.clone_key(), provider)
        .map(Arc::new)
        .map_err(|e| format!("{key} does not go with {cert}: {e}"))
}

impl Certs {
    /// A listener's certificates, read now.
    pub fn new(tls: &Tls) -> Result<Arc<Certs>, String> {
        Ok(Arc::new(Certs(ArcSwap::new(load(tls)?))))
    }

    /// New handshakes use `key` from now on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }

    /// Pingora's TLS settings for a listener that resolves through these.
    pub fn settings(self: &Arc<Self>, tls: &Tls) -> Result<TlsSettings, String> {
        let mut s =
            TlsSettings::intermediate(&tls.cert.to_string_lossy(), &tls.key.to_string_lossy())
                .map_err(|e| e.to_string())?;
        s.set_cert_resolver(self.clone());
        Ok(s)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}
