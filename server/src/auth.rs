//! Bearer tokens and roles: who may call which route.
//!
//! A token file (`serve --tokens FILE`) holds one token per line as `ROLE NAME sha256:HEX`:
//! tokens are hashed at rest, and a presented token's hash is compared with every entry
//! in constant time. `cellplacer token` makes a new one. Roles nest: `read` may GET,
//! `runtime` may also change cells (place, replace, clients, moves, delete), `admin` may
//! do everything (inventory, plans, what-if, import).

use std::fmt;
use std::path::Path;

use axum::http::Method;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use runtime::Error;

/// A token's role; roles nest, each may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May GET (cells, servers, the report, the inventory, plans, metrics).
    Read,
    /// May also change cells: place, replace, clients, moves, delete.
    Runtime,
    /// May do everything: inventory, plans, what-if, import.
    Admin,
}

impl Role {
    const ALL: [Role; 3] = [Role::Read, Role::Runtime, Role::Admin];

    /// The role as a token file and messages spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Runtime => "runtime",
            Role::Admin => "admin",
        }
    }

    /// The role spelled `s` (`read`, `runtime` or `admin`).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role a route needs; `None`: open to all (probes and the API description).
pub(crate) fn required(method: &Method, route: &str) -> Option<Role> {
    // The console's assets carry no data: the page asks for the token, and every call it
    // makes needs one.
    const OPEN: [&str; 7] = [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/ui",
        "/ui/",
        "/ui/app.js",
        "/ui/style.css",
    ];
    const RUNTIME: [&str; 7] = [
        "/v1/cells",
        "/v1/cells/{id}",
        "/v1/cells/{id}/replace",
        "/v1/cells/{id}/clients",
        "/v1/cells/{id}/moves/{n}/commit",
        "/v1/elements/{id}/state",
        "/v1/elements/states",
    ];
    if OPEN.contains(&route) {
        None
    } else if method == Method::GET || method == Method::HEAD {
        Some(Role::Read)
    } else if RUNTIME.contains(&route) {
        Some(Role::Runtime)
    } else {
        Some(Role::Admin)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// The tokens a service accepts.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

/// SHA-256 of a token, as the file keeps it.
fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random token (256 bits, hex) and its line for a token file.
pub fn new_token(role: Role, name: &str) -> Result<(String, String), Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    let token = hex(&secret);
    let line = format!("{role} {name} sha256:{}", hex(&hash(&token)));
    Ok((token, line))
}

impl Tokens {
    /// Reads a token file; every bad line is named (`FILE line N: ...`), and a file with
    /// none is refused.
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidConfig {
            message: format!("--tokens {}: {e}", path.display()),
        })?;
        Tokens::parse(&text).map_err(|problems| Error::InvalidConfig {
            message: problems
                .iter()
                .map(|p| format!("--tokens {} {p}", path.display()))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// Lines `ROLE NAME sha256:HEX`; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Tokens, Vec<String>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = format!("line {}", i + 1);
            let [role, name, hash] = fields[..] else {
                problems.push(format!("{at}: expected 'ROLE NAME sha256:HEX'"));
                continue;
            };
            let Some(role) = Role::parse(role) else {
                problems.push(format!(
                    "{at}: unknown role '{role}' (read, runtime or admin)"
                ));
                continue;
            };
            let Some(hash) = hash.strip_prefix("sha256:").and_then(unhex) else {
                problems.push(format!(
                    "{at}: the token must be given as sha256: and 64 hex digits (`cellplacer token` makes one)"
                ));
                continue;
            };
            if entries.iter().any(|e: &Entry| e.name == name) {
                problems.push(format!("{at}: the name '{name}' comes twice"));
                continue;
            }
            entries.push(Entry {
                name: name.to_owned(),
                role,
                hash,
            });
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push("has no token".into());
        }
        if problems.is_empty() {
            Ok(Tokens { entries })
        } else {
            Err(problems)
        }
    }

    /// The name and role of a presented token. Every entry is compared, in constant time,
    /// whatever matches.
    pub fn check(&self, token: &str) -> Option<(&str, Role)> {
        let presented = hash(token);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&presented)) {
                found = Some((e.name.as_str(), e.role));
            }
        }
        found
    }

    /// How many tokens there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_lines_are_named() {
        let (admin, admin_line) = new_token(Role::Admin, "ops").unwrap();
        let (reader, reader_line) = new_token(Role::Read, "dash").unwrap();
        assert_eq!(admin.len(), 64);
        assert_ne!(admin, reader);
        let tokens = Tokens::parse(&format!("# who\n{admin_line}\n\n{reader_line}\n")).unwrap();
        assert_eq!(tokens.check(&admin), Some(("ops", Role::Admin)));
        assert_eq!(tokens.check(&reader), Some(("dash", Role::Read)));
        assert_eq!(tokens.check("nope"), None);
        assert_eq!(tokens.check(&admin[1..]), None);
        // The file holds no token itself.
        assert!(!admin_line.contains(&admin));

        let problems = Tokens::parse(&format!(
            "root ops sha256:{}\nadmin x 1234\nadmin\n{admin_line}\n{admin_line}\n",
            "0".repeat(64)
        ))
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("line 1: unknown role 'root'"));
        assert!(problems[1].starts_with("line 2: the token must be given as sha256:"));
        assert!(problems[2].starts_with("line 3: expected"));
        assert!(problems[3].starts_with("line 5: the name 'ops' comes twice"));
        assert_eq!(Tokens::parse("# none\n").unwrap_err(), vec!["has no token"]);
    }

    #[test]
    fn routes_need_the_roles_they_say() {
        let need = |m: Method, r: &str| required(&m, r);
        assert_eq!(need(Method::GET, "/healthz"), None);
        assert_eq!(need(Method::GET, "/openapi.json"), None);
        assert_eq!(need(Method::GET, "/metrics"), Some(Role::Read));
        assert_eq!(need(Method::GET, "/v1/cells/{id}"), Some(Role::Read));
        assert_eq!(need(Method::POST, "/v1/cells"), Some(Role::Runtime));
        assert_eq!(need(Method::DELETE, "/v1/cells/{id}"), Some(Role::Runtime));
        assert_eq!(
            need(Method::POST, "/v1/cells/{id}/moves/{n}/commit"),
            Some(Role::Runtime)
        );
        assert_eq!(need(Method::POST, "/v1/inventory"), Some(Role::Admin));
        assert_eq!(
            need(Method::PUT, "/v1/elements/{id}/state"),
            Some(Role::Runtime)
        );
        assert_eq!(
            need(Method::POST, "/v1/elements/states"),
            Some(Role::Runtime)
        );
        assert_eq!(need(Method::PUT, "/v1/autopilot"), Some(Role::Admin));
        assert_eq!(
            need(Method::POST, "/v1/plans/{id}/execute"),
            Some(Role::Admin)
        );
        assert_eq!(need(Method::POST, "unmatched"), Some(Role::Admin));
        assert!(Role::Admin > Role::Runtime && Role::Runtime > Role::Read);
    }
}
