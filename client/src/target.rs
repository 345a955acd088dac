//! What `routewatch` watches: this host in process, or an agent's address.

use std::fmt;

/// One TARGET argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This host's namespace, watched in process: no agent, no network.
    Local,
    /// An agent at `host:port`.
    Remote(String),
}

impl Target {
    /// Parses `host:port` (`[v6]:port` for IPv6 literals).
    pub fn parse(s: &str) -> Result<Target, crate::ClientError> {
        let bad = || crate::ClientError::BadTarget(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() || s.contains("://") {
            return Err(bad());
        }
        Ok(Target::Remote(s.to_string()))
    }

    /// The label printed in front of this target's lines.
    pub fn label(&self) -> String {
        match self {
            Target::Local => local_hostname(),
            Target::Remote(addr) => addr.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Local => f.write_str("this host"),
            Target::Remote(a) => f.write_str(a),
        }
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_targets_parse() {
        assert_eq!(
            Target::parse("10.0.0.1:50051").unwrap(),
            Target::Remote("10.0.0.1:50051".into())
        );
        assert_eq!(
            Target::parse("[::1]:50051").unwrap(),
            Target::Remote("[::1]:50051".into())
        );
        assert!(Target::parse("nohost").is_err());
        assert!(Target::parse("host:notaport").is_err());
        assert!(Target::parse("http://host:1").is_err());
    }
}
