//! `routewatch certs init`: a CA plus an agent and a client certificate,
//! for trying mutual TLS in minutes. A fleet uses its own PKI instead
//! (cert-manager, Vault, SPIFFE); the agent and the client take any PEM
//! files.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::ClientError;

/// `routewatch certs ...`.
#[derive(Debug, Subcommand)]
pub enum Certs {
    /// Make a CA, an agent certificate and a client certificate in DIR.
    ///
    /// Writes, in DIR:
    ///   ca.pem                     the CA: clients' --ca, and the agent's --client-ca
    ///   ca-key.pem                 the CA's key (keep it safe, or delete it)
    ///   agent.pem, agent-key.pem   routewatch-agent --tls-cert, --tls-key
    ///   client.pem, client-key.pem routewatch --cert, --key
    ///
    /// Keys are ECDSA P-256, written with mode 0600. Existing files are kept
    /// unless --force is given.
    ///
    /// Example:
    ///   routewatch certs init pki --agent-name host1.example.net --client-id spiffe://example.net/collector
    #[command(verbatim_doc_comment)]
    Init(CertsInit),
}

/// `certs init`'s options.
#[derive(Debug, Args)]
pub struct CertsInit {
    /// Directory to write the files into (created if missing).
    pub dir: PathBuf,

    /// A DNS name or IP address the agent's certificate carries; clients
    /// must connect by one of them (or set --tls-server-name). Repeat for
    /// several. Default: this host's name, localhost, 127.0.0.1 and ::1.
    #[arg(long = "agent-name", value_name = "NAME")]
    pub agent_names: Vec<String>,

    /// An identity the client certificate carries: a DNS name, or a URI
    /// such as spiffe://example.net/collector. routewatch-agent
    /// --allow-client admits clients by these. Repeat for several.
    /// Default: routewatch-client.
    #[arg(long = "client-id", value_name = "ID")]
    pub client_ids: Vec<String>,

    /// Common name of the CA. Default: "routewatch CA", this host's name
    /// and the time, so that two such CAs are never mistaken for each other.
    #[arg(long, value_name = "NAME")]
    pub ca_name: Option<String>,

    /// Days the CA and the certificates are valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,

    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

const FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "agent.pem",
    "agent-key.pem",
    "client.pem",
    "client-key.pem",
];

impl Certs {
    pub fn run(self) -> Result<(), ClientError> {
        match self {
            Certs::Init(init) => init.run(),
        }
    }
}

impl CertsInit {
    fn run(self) -> Result<(), ClientError> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        if !self.force {
            if let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
                return Err(fail(format!(
                    "{} exists already: choose another directory, or pass --force to replace the files",
                    existing.display()
                )));
            }
        }
        let agent_names = if self.agent_names.is_empty() {
            default_agent_names()
        } else {
            self.agent_names.clone()
        };
        let client_ids = if self.client_ids.is_empty() {
            vec!["routewatch-client".to_owned()]
        } else {
            self.client_ids.clone()
        };
        let ca_name = self.ca_name.clone().unwrap_or_else(default_ca_name);
        let pki = issue(&ca_name, &agent_names, &client_ids, self.days)?;
        for (name, pem, secret) in [
            ("ca.pem", &pki.ca, false),
            ("ca-key.pem", &pki.ca_key, true),
            ("agent.pem", &pki.agent, false),
            ("agent-key.pem", &pki.agent_key, true),
            ("client.pem", &pki.client, false),
            ("client-key.pem", &pki.client_key, true),
        ] {
            write(&dir.join(name), pem, secret)?;
        }
        let d = dir.display();
        println!("Wrote a CA, an agent certificate ({}) and a client certificate ({}) to {d}, valid for {} days.",
            agent_names.join(", "), client_ids.join(", "), self.days);
        println!();
        println!("On the agent's host:");
        println!("  routewatch-agent --tls-cert {d}/agent.pem --tls-key {d}/agent-key.pem --client-ca {d}/ca.pem --allow-client {}", client_ids[0]);
        println!("Anywhere (connect by a name the agent's certificate carries):");
        println!("  routewatch tail --ca {d}/ca.pem --cert {d}/client.pem --key {d}/client-key.pem {}:50051", agent_names[0]);
        Ok(())
    }
}

/// PEM texts of a fresh CA and the two certificates it issued.
pub struct Pki {
    pub ca: String,
    pub ca_key: String,
    pub agent: String,
    pub agent_key: String,
    pub client: String,
    pub client_key: String,
}

/// Issues a CA, an agent certificate for `agent_names` and a client
/// certificate for `client_ids`, all valid for `days` from an hour ago
/// (so that a slightly slow clock elsewhere does not reject them).
pub fn issue(
    ca_name: &str,
    agent_names: &[String],
    client_ids: &[String],
    days: u32,
) -> Result<Pki, ClientError> {
    let not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let not_after = not_before + time::Duration::days(i64::from(days.max(1)));
    let rcgen = |e: rcgen::Error| fail(format!("cannot make certificates: {e}"));

    let mut ca = CertificateParams::default();
    ca.distinguished_name = name(ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate().map_err(rcgen)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(rcgen)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let leaf = |names: &[String], purpose: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&names[0]);
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(rcgen)?;
        let cert = params.signed_by(&key, &issuer).map_err(rcgen)?;
        Ok::<_, ClientError>((cert.pem(), key.serialize_pem()))
    };
    let (agent, agent_key) = leaf(agent_names, ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client, client_key) = leaf(client_ids, ExtendedKeyUsagePurpose::ClientAuth)?;
    Ok(Pki {
        ca: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        agent,
        agent_key,
        client,
        client_key,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// An IP address, a URI (anything with "://", such as a SPIFFE id) or a
/// DNS name.
fn san(name: &str) -> Result<SanType, ClientError> {
    let bad = |e: rcgen::Error| fail(format!("{name:?} cannot be a certificate name: {e}"));
    if let Ok(ip) = name.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let text = name.to_owned().try_into().map_err(bad)?;
    Ok(if name.contains("://") {
        SanType::URI(text)
    } else {
        SanType::DnsName(text)
    })
}

fn hostname() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim();
    (!host.is_empty() && host != "localhost").then(|| host.to_owned())
}

fn default_agent_names() -> Vec<String> {
    let mut names: Vec<String> = hostname().into_iter().collect();
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    names
}

fn default_ca_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    match hostname() {
        Some(host) => format!("routewatch CA {host} {stamp}"),
        None => format!("routewatch CA {stamp}"),
    }
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), ClientError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    file.flush()
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

fn fail(problem: String) -> ClientError {
    ClientError::Certs(problem)
}
