//! What `routewatch` watches: this host in process, an agent's address, or
//! every address a DNS name resolves to.

use std::fmt;

/// One TARGET argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This host's namespace, watched in process: no agent, no network.
    Local,
    /// An agent at `host:port`.
    Remote(String),
    /// An agent at every A/AAAA address of `name` (`dns:///name:port`),
    /// followed as the answer changes: a Kubernetes headless Service in
    /// front of the DaemonSet.
    Dns { name: String, port: u16 },
}

impl Target {
    /// Parses `host:port` (`[v6]:port` for IPv6 literals) or
    /// `dns:///name:port` (also `dns:name:port`).
    pub fn parse(s: &str) -> Result<Target, crate::ClientError> {
        let bad = || crate::ClientError::BadTarget(s.to_string());
        if let Some(rest) = s.strip_prefix("dns:") {
            let rest = rest.strip_prefix("///").unwrap_or(rest);
            let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse::<u16>().map_err(|_| bad())?;
            if name.is_empty() || name.contains(['/', '[', ']']) {
                return Err(bad());
            }
            return Ok(Target::Dns {
                name: name.to_owned(),
                port,
            });
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() || s.contains("://") {
            return Err(bad());
        }
        Ok(Target::Remote(s.to_string()))
    }

    /// The label printed in front of this target's lines until the agent
    /// names its host.
    pub fn label(&self) -> String {
        match self {
            Target::Local => routewatch_agent::info::kernel_hostname(),
            Target::Remote(addr) => addr.clone(),
            Target::Dns { .. } => self.to_string(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Local => f.write_str("this host"),
            Target::Remote(a) => f.write_str(a),
            Target::Dns { name, port } => write!(f, "dns:///{name}:{port}"),
        }
    }
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

    #[test]
    fn dns_targets_parse() {
        let agents = Target::Dns {
            name: "agents.kube-system.svc".into(),
            port: 50051,
        };
        assert_eq!(
            Target::parse("dns:///agents.kube-system.svc:50051").unwrap(),
            agents
        );
        assert_eq!(
            Target::parse("dns:agents.kube-system.svc:50051").unwrap(),
            agents
        );
        assert_eq!(agents.to_string(), "dns:///agents.kube-system.svc:50051");
        assert!(
            Target::parse("dns:///agents").is_err(),
            "the port is required"
        );
        assert!(Target::parse("dns:///:50051").is_err());
        assert!(
            Target::parse("dns://8.8.8.8/agents:50051").is_err(),
            "no authority"
        );
    }
}
