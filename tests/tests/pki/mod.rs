//! Certificates made by the test itself with rcgen: CAs, agent and client
//! certificates (valid, expired, for any names), written to a temporary
//! directory that is removed on drop.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use routewatch_tests::util::temp_path;
use time::{Duration, OffsetDateTime};

/// A temporary directory for certificate files.
pub struct Dir {
    path: PathBuf,
}

impl Dir {
    pub fn new() -> Dir {
        let path = temp_path("pki");
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Dir { path }
    }

    /// The path of `name` in the directory, as a string for arguments.
    pub fn path(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        path
    }

    /// Replaces `name` the way Kubernetes and cert-manager do: a new file
    /// renamed over the old one, so that readers never see half of it.
    pub fn replace(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.new"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {tmp}: {e}"));
        let path = self.path(name);
        std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("renaming {tmp} to {path}: {e}"));
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// A CA that issues agent and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(3);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3);
        let key = KeyPair::generate().expect("generating a CA key");
        let pem = params.self_signed(&key).expect("self-signing the CA").pem();
        Ca { params, key, pem }
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// now.
    pub fn agent(&self, names: &[&str]) -> Leaf {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, valid_now())
    }

    /// A client certificate for `ids` (DNS names or URIs), valid now.
    pub fn client(&self, ids: &[&str]) -> Leaf {
        self.issue(ids, ExtendedKeyUsagePurpose::ClientAuth, valid_now())
    }

    /// A certificate that expired yesterday.
    pub fn expired(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.issue(
            names,
            purpose,
            (now - Duration::days(2), now - Duration::days(1)),
        )
    }

    fn issue(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    ) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(names[0]);
        params.subject_alt_names = names.iter().map(|n| san(n)).collect();
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().expect("generating a key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("issuing a certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(1))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn san(name: &str) -> SanType {
    if let Ok(ip) = name.parse() {
        return SanType::IpAddress(ip);
    }
    let text = name.to_owned().try_into().expect("an ASCII name");
    if name.contains("://") {
        SanType::URI(text)
    } else {
        SanType::DnsName(text)
    }
}

/// The identity the tests' allowed client carries.
pub const CLIENT_ID: &str = "spiffe://routewatch.test/collector";

/// Files for an agent with mutual TLS and for its clients: the agent's
/// certificate (for 127.0.0.1 and localhost) and a client certificate for
/// [`CLIENT_ID`], both from `ca`, under names starting with `prefix`. The
/// agent's `--client-ca` and the clients' `--ca` are separate files (the
/// same CA), so that rotating the agent's files leaves the clients' alone.
pub struct Mtls {
    pub agent_args: Vec<String>,
    pub client_args: Vec<String>,
}

impl Mtls {
    pub fn new(dir: &Dir, ca: &Ca, prefix: &str) -> Mtls {
        let agent = ca.agent(&["127.0.0.1", "localhost"]);
        let client = ca.client(&[CLIENT_ID]);
        let agent_args = vec![
            "--tls-cert".into(),
            dir.write(&format!("{prefix}agent.pem"), &agent.cert),
            "--tls-key".into(),
            dir.write(&format!("{prefix}agent-key.pem"), &agent.key),
            "--client-ca".into(),
            dir.write(&format!("{prefix}client-ca.pem"), &ca.pem),
            "--allow-client".into(),
            CLIENT_ID.into(),
        ];
        let client_args = vec![
            "--ca".into(),
            dir.write(&format!("{prefix}ca.pem"), &ca.pem),
            "--cert".into(),
            dir.write(&format!("{prefix}client.pem"), &client.cert),
            "--key".into(),
            dir.write(&format!("{prefix}client-key.pem"), &client.key),
        ];
        Mtls {
            agent_args,
            client_args,
        }
    }
}

/// `&str`s of `args`, for the harness's argument lists.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A client's arguments for the certificate `leaf` (written as NAME.pem
/// and NAME-key.pem), trusting the agent's CA in `ca.pem`.
pub fn client_args(dir: &Dir, name: &str, leaf: &Leaf) -> Vec<String> {
    vec![
        "--ca".into(),
        dir.path("ca.pem"),
        "--cert".into(),
        dir.write(&format!("{name}.pem"), &leaf.cert),
        "--key".into(),
        dir.write(&format!("{name}-key.pem"), &leaf.key),
    ]
}
