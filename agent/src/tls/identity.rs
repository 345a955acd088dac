//! Who a client is: the DNS and URI subject alternative names of the
//! certificate it presented (a SPIFFE id is a URI SAN).

use std::fmt;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// A verified client certificate's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// DNS and URI SANs, in certificate order.
    pub names: Vec<String>,
}

impl ClientIdentity {
    /// The identities of a DER certificate (one that rustls has verified
    /// already); a certificate that does not parse has none.
    pub fn from_der(der: &[u8]) -> ClientIdentity {
        let names = match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => san_names(&cert),
            Err(_) => Vec::new(),
        };
        ClientIdentity { names }
    }

    pub fn has(&self, id: &str) -> bool {
        self.names.iter().any(|n| n == id)
    }
}

impl fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.names.is_empty() {
            f.write_str("no DNS or URI name")
        } else {
            f.write_str(&self.names.join(", "))
        }
    }
}

/// The DNS and URI names of a certificate's subjectAltName extension.
pub fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(n) | GeneralName::URI(n) => Some((*n).to_owned()),
            _ => None,
        })
        .collect()
}
