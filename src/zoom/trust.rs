//! Which origins may receive the bearer token: the API and OAuth origins, Zoom's own
//! HTTPS hosts, and what the caller adds ([`super::ClientConfig::extra_trusted_hosts`]).
//! A download that is redirected anywhere else is followed without `Authorization`.
//!
//! Its own module because both the client (which builds it) and downloads (which ask it)
//! need it, and neither should depend on the other for it.

use url::Url;

use super::error::ZoomError;

/// Origins that may receive the bearer token.
#[derive(Debug, Clone)]
pub(crate) struct TrustedHosts {
    /// (scheme, host, port) matched exactly.
    origins: Vec<(String, String, u16)>,
    /// HTTPS hosts matched exactly (port 443).
    https_hosts: Vec<String>,
    /// HTTPS host suffixes, each starting with `.` (port 443).
    https_suffixes: Vec<String>,
}

fn origin_of(u: &Url) -> Option<(String, String, u16)> {
    Some((
        u.scheme().to_owned(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

impl TrustedHosts {
    pub(crate) fn new(api: &Url, oauth: &Url, extra: &[String]) -> Result<Self, ZoomError> {
        let mut t = TrustedHosts {
            origins: [api, oauth].into_iter().filter_map(origin_of).collect(),
            https_hosts: vec!["zoom.us".to_owned()],
            https_suffixes: vec![".zoom.us".to_owned()],
        };
        for entry in extra {
            let e = entry.trim().to_ascii_lowercase();
            let bad = || ZoomError::InvalidInput {
                op: "client",
                detail: format!(
                    "extra trusted host {entry:?}: expected an origin (https://host:port), a host name or *.domain"
                ),
            };
            if e.contains("://") {
                let u = Url::parse(&e).map_err(|_| bad())?;
                t.origins.push(origin_of(&u).ok_or_else(bad)?);
            } else if let Some(suffix) = e.strip_prefix("*.") {
                if suffix.is_empty() || suffix.contains(['/', ':', '*']) {
                    return Err(bad());
                }
                t.https_suffixes.push(format!(".{suffix}"));
            } else {
                if e.is_empty() || e.contains(['/', ':', '*']) {
                    return Err(bad());
                }
                t.https_hosts.push(e);
            }
        }
        Ok(t)
    }

    /// Whether `url` may receive the Authorization header.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let Some(origin) = origin_of(url) else {
            return false;
        };
        if self.origins.contains(&origin) {
            return true;
        }
        let (scheme, host, port) = origin;
        if scheme != "https" || port != 443 {
            return false;
        }
        self.https_hosts.contains(&host)
            || self
                .https_suffixes
                .iter()
                .any(|s| host.ends_with(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(extra: &[&str]) -> TrustedHosts {
        TrustedHosts::new(
            &Url::parse("http://127.0.0.1:8080/v2").unwrap(),
            &Url::parse("http://127.0.0.1:8081/oauth/token").unwrap(),
            &extra.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn trusted_origins() {
        let t = trusted(&[
            "http://127.0.0.1:9000",
            "files.example.org",
            "*.zoomgov.com",
        ]);
        let ok = |s: &str| t.allows(&Url::parse(s).unwrap());
        assert!(ok("http://127.0.0.1:8080/rec/download/x"));
        assert!(ok("http://127.0.0.1:8081/x"));
        assert!(ok("http://127.0.0.1:9000/x"));
        assert!(
            !ok("http://127.0.0.1:9001/x"),
            "another port is another origin"
        );
        assert!(!ok("http://localhost:8080/x"));
        assert!(ok("https://zoom.us/rec/download/abc"));
        assert!(ok("https://us02web.zoom.us/rec/download/abc"));
        assert!(ok("https://ZOOM.US/x"));
        assert!(!ok("http://zoom.us/x"), "no token over plain HTTP");
        assert!(!ok("https://zoom.us:8443/x"));
        assert!(!ok("https://evilzoom.us/x"));
        assert!(!ok("https://zoom.us.evil.com/x"));
        assert!(!ok("https://ssrweb.s3.amazonaws.com/x"));
        assert!(ok("https://files.example.org/x"));
        assert!(!ok("https://sub.files.example.org/x"));
        assert!(ok("https://a.zoomgov.com/x"));
        assert!(!ok("https://zoomgov.com/x"));
    }

    #[test]
    fn bad_extra_entries_are_refused() {
        for bad in ["", "*.", "a/b", "*.a:1", "http://"] {
            assert!(
                TrustedHosts::new(
                    &Url::parse("https://api.zoom.us/v2").unwrap(),
                    &Url::parse("https://zoom.us/oauth/token").unwrap(),
                    &[bad.to_string()],
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }
}
