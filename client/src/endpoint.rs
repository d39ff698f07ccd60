//! Where a node's client port is: `host:port`, the host an IP address or a
//! DNS name, and the TLS server name a node there is expected to carry.
//!
//! A DNS name is resolved when the client dials it, never before: every
//! address it resolves to is tried, and the next dial (after a connection
//! failed) resolves it again, so a node that moved is found at its new
//! address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The longest DNS name accepted, in bytes (RFC 1035: 253 characters in
/// text form).
const MAX_DNS_NAME_BYTES: usize = 253;
/// The longest label of a DNS name, in bytes (RFC 1035).
const MAX_DNS_LABEL_BYTES: usize = 63;

/// One node's client address as configured: an IP address or a DNS name,
/// and a port.
///
/// Parsed from `host:port` (`10.0.0.5:7401`, `db-1.internal:7401`,
/// `[::1]:7401`), or made from a [`SocketAddr`]:
///
/// ```
/// use synod_client::Endpoint;
/// let by_name: Endpoint = "db-1.internal:7401".parse()?;
/// assert_eq!(by_name.host(), "db-1.internal");
/// assert_eq!(by_name.port(), 7401);
/// let by_ip = Endpoint::from(std::net::SocketAddr::from(([10, 0, 0, 5], 7401)));
/// assert_eq!(by_ip.to_string(), "10.0.0.5:7401");
/// # Ok::<(), synod_client::InvalidEndpoint>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: Host,
    port: u16,
}

/// An endpoint's host. Invariant: a `Dns` name passed [`check_dns_name`]
/// and is not an IP address in text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    Dns(String),
}

impl Endpoint {
    /// The endpoint `host:port`; `host` is an IP address or a DNS name.
    ///
    /// # Errors
    /// [`InvalidEndpoint`] if `host` is neither, or `port` is 0.
    pub fn new(host: &str, port: u16) -> Result<Endpoint, InvalidEndpoint> {
        let invalid = |reason| InvalidEndpoint {
            input: format!("{host}:{port}"),
            reason,
        };
        if port == 0 {
            return Err(invalid("port 0 cannot be dialed"));
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Endpoint {
                host: Host::Ip(ip),
                port,
            });
        }
        check_dns_name(host).map_err(invalid)?;
        Ok(Endpoint {
            host: Host::Dns(host.to_owned()),
            port,
        })
    }

    /// The host as given: an IP address in text or a DNS name.
    pub fn host(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Dns(name) => name.clone(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IP address, if the host is one (no DNS name to resolve).
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Ip(ip) => Some(*ip),
            Host::Dns(_) => None,
        }
    }

    /// The TLS server name a node here is expected to carry unless the
    /// configuration overrides it: the DNS name, or the IP address in text.
    pub fn server_name(&self) -> String {
        self.host()
    }

    /// The addresses to dial, resolving a DNS name now (through the
    /// system's resolver, on a blocking thread). An IP endpoint is its one
    /// address.
    ///
    /// # Errors
    /// The name does not resolve, or resolves to nothing.
    pub(crate) async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match &self.host {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Dns(name) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), self.port))
                    .await?
                    .collect();
                if addrs.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{name} resolves to no address"),
                    ));
                }
                Ok(addrs)
            }
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }
}

impl FromStr for Endpoint {
    type Err = InvalidEndpoint;

    /// Parses `host:port`; an IPv6 address goes in brackets (`[::1]:7401`).
    fn from_str(text: &str) -> Result<Endpoint, InvalidEndpoint> {
        let invalid = |reason| InvalidEndpoint {
            input: text.to_owned(),
            reason,
        };
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:port"))?;
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(invalid("an IPv6 address goes in brackets: [::1]:7401"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is not a number from 1 to 65535"))?;
        Endpoint::new(host, port).map_err(|e| invalid(e.reason))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Dns(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// What [`ClientConfig`](crate::ClientConfig)'s constructors take as an
/// endpoint: an [`Endpoint`], a [`SocketAddr`], or `host:port` text.
pub trait IntoEndpoint {
    /// The endpoint this names.
    ///
    /// # Errors
    /// [`InvalidEndpoint`] for text that does not parse as `host:port`.
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint>;
}

impl IntoEndpoint for Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        Ok(self)
    }
}

impl IntoEndpoint for &Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        Ok(self.clone())
    }
}

impl IntoEndpoint for SocketAddr {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        Ok(Endpoint::from(self))
    }
}

impl IntoEndpoint for &str {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        self.parse()
    }
}

impl IntoEndpoint for String {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        self.parse()
    }
}

impl IntoEndpoint for &String {
    fn into_endpoint(self) -> Result<Endpoint, InvalidEndpoint> {
        self.parse()
    }
}

/// An endpoint that is not `host:port` with an IP address or a DNS name
/// and a port from 1 to 65535.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint `{input}`: {reason}")]
pub struct InvalidEndpoint {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Whether `name` is a DNS name a client can dial and a certificate can
/// carry: at most 253 bytes of dot-separated labels, each 1 to 63 ASCII
/// letters, digits, `-` or `_`, not starting or ending with `-`.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("no host");
    }
    if name.len() > MAX_DNS_NAME_BYTES {
        return Err("the host name is longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_DNS_LABEL_BYTES {
            return Err("each dot-separated part of a host name has 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a host name has only ASCII letters, digits, '-', '_' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("no part of a host name starts or ends with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_ip_addresses_and_dns_names_and_print_back() {
        for text in [
            "127.0.0.1:7401",
            "[::1]:7401",
            "localhost:7401",
            "db-1.internal:1",
            "node_3.example.com:65535",
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
        let v6: Endpoint = "[::1]:7401".parse().unwrap();
        assert_eq!(v6.ip(), Some("::1".parse().unwrap()));
        assert_eq!(v6.server_name(), "::1");
        let dns: Endpoint = "db-1.internal:7401".parse().unwrap();
        assert_eq!(
            (dns.ip(), dns.server_name()),
            (None, "db-1.internal".into())
        );
    }

    #[test]
    fn malformed_endpoints_are_refused_with_the_reason() {
        for text in [
            "localhost",
            "localhost:",
            "localhost:0",
            "localhost:70000",
            ":7401",
            "::1:7401",
            "bad host:7401",
            "-db.internal:7401",
            "db..internal:7401",
        ] {
            let err = text.parse::<Endpoint>().unwrap_err();
            assert_eq!(err.input, text, "{err}");
        }
    }

    #[tokio::test]
    async fn an_ip_endpoint_resolves_to_itself_and_a_name_through_the_resolver() {
        let ip: Endpoint = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            ip.resolve().await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        let name: Endpoint = "localhost:9".parse().unwrap();
        let addrs = name.resolve().await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }
}
