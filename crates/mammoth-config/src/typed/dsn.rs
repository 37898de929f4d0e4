//! DSNs: URLs pass through, the seed's PDO forms become URLs, credentials merge in.
//!
//! `mysql:host=localhost;dbname=event_store` → `mysql://localhost/event_store`;
//! `pgsql:host=db;port=5432;dbname=es;user=app` → `postgres://app@db:5432/es`;
//! `sqlite:path` and a plain path → `sqlite://path`. A DSN may hold a password, so messages
//! about one name its parts, never its text.

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The URL's scheme in lower case (`""` when it has none).
pub(crate) fn scheme_of(url: &str) -> String {
    url.split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Turns a DSN as written into a URL.
///
/// # Errors
/// A message naming what is wrong (never the DSN's text, which may hold a password).
pub fn normalize_dsn(dsn: &str) -> Result<String, String> {
    let dsn = dsn.trim();
    if dsn.is_empty() {
        return Err("the DSN is empty".to_owned());
    }
    if dsn
        .split_once("://")
        .is_some_and(|(scheme, _)| is_scheme(scheme))
    {
        return Ok(dsn.to_owned());
    }
    if let Some(rest) = dsn.strip_prefix("sqlite:") {
        return Ok(format!("sqlite://{rest}"));
    }
    if let Some((driver, params)) = dsn.split_once(':') {
        let scheme = match driver.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Some("mysql"),
            "pgsql" | "postgres" | "postgresql" => Some("postgres"),
            _ => None,
        };
        if let Some(scheme) = scheme {
            return pdo_to_url(scheme, params);
        }
    }
    Ok(format!("sqlite://{dsn}"))
}

fn pdo_to_url(scheme: &str, params: &str) -> Result<String, String> {
    let (mut host, mut port, mut db, mut user, mut password) = (None, None, None, None, None);
    let mut query: Vec<(String, String)> = Vec::new();
    for part in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(
                "a part of the PDO DSN has no `=`; write `key=value` pairs separated by `;`"
                    .to_owned(),
            );
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "host" => host = Some(value),
            "port" => {
                let parsed: u16 = value
                    .parse()
                    .map_err(|_| "the PDO DSN's `port` is not a port number".to_owned())?;
                port = Some(parsed);
            }
            "dbname" => db = Some(value),
            "user" => user = Some(value),
            "password" => password = Some(value),
            "unix_socket" => query.push(("socket".to_owned(), value.to_owned())),
            other => query.push((other.to_owned(), value.to_owned())),
        }
    }
    let host = host.filter(|h| !h.is_empty()).unwrap_or("localhost");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut url = format!("{scheme}://");
    match (user, password) {
        (Some(u), Some(p)) => {
            url.push_str(&format!("{}:{}@", percent_encode(u), percent_encode(p)))
        }
        (Some(u), None) => url.push_str(&format!("{}@", percent_encode(u))),
        (None, Some(p)) => url.push_str(&format!(":{}@", percent_encode(p))),
        (None, None) => {}
    }
    url.push_str(&host);
    if let Some(port) = port {
        url.push_str(&format!(":{port}"));
    }
    if let Some(db) = db.filter(|d| !d.is_empty()) {
        url.push('/');
        url.push_str(&percent_encode(db));
    }
    for (i, (key, value)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&format!(
            "{}={}",
            percent_encode(key),
            percent_encode(value)
        ));
    }
    Ok(url)
}

/// Adds `username` and `password` to a URL that lacks them; what the URL already carries wins.
pub(crate) fn merge_credentials(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = (
        rest.get(..end).unwrap_or(rest),
        rest.get(end..).unwrap_or(""),
    );
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((info, host)) => (Some(info), host),
        None => (None, authority),
    };
    let (url_user, url_pass) = match userinfo.map(|info| info.split_once(':')) {
        Some(Some((u, p))) => (Some(u.to_owned()), Some(p.to_owned())),
        Some(None) => (userinfo.map(str::to_owned), None),
        None => (None, None),
    };
    let user = url_user
        .filter(|u| !u.is_empty())
        .or_else(|| username.map(percent_encode));
    let pass = url_pass.or_else(|| password.map(percent_encode));
    let info = match (user, pass) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (Some(u), None) => format!("{u}@"),
        (None, Some(p)) => format!(":{p}@"),
        (None, None) => String::new(),
    };
    format!("{scheme}://{info}{hostport}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdo_mysql_from_the_seed_becomes_a_mysql_url() {
        assert_eq!(
            normalize_dsn("mysql:host=localhost;dbname=event_store"),
            Ok("mysql://localhost/event_store".to_owned())
        );
    }

    #[test]
    fn pdo_pgsql_keeps_port_user_and_extra_options() {
        assert_eq!(
            normalize_dsn(
                "pgsql:host=db;port=5432;dbname=es;user=app;password=p@ss;sslmode=require"
            ),
            Ok("postgres://app:p%40ss@db:5432/es?sslmode=require".to_owned())
        );
    }

    #[test]
    fn pdo_with_a_bad_port_or_missing_equals_is_refused_without_echoing_it() {
        let err = normalize_dsn("pgsql:host=db;port=high").unwrap_err();
        assert!(err.contains("port") && !err.contains("high"));
        assert!(normalize_dsn("mysql:host=db;oops").is_err());
    }

    #[test]
    fn sqlite_forms_and_plain_paths_become_sqlite_urls() {
        assert_eq!(
            normalize_dsn("sqlite:data/x.db"),
            Ok("sqlite://data/x.db".to_owned())
        );
        assert_eq!(
            normalize_dsn("./data/x.db"),
            Ok("sqlite://./data/x.db".to_owned())
        );
        assert_eq!(
            normalize_dsn("postgres://h/db"),
            Ok("postgres://h/db".to_owned())
        );
    }

    #[test]
    fn credentials_fill_in_only_what_the_url_lacks() {
        assert_eq!(
            merge_credentials("mysql://localhost:3306/es", Some("root"), Some("p w")),
            "mysql://root:p%20w@localhost:3306/es"
        );
        assert_eq!(
            merge_credentials("postgres://app:secret@db/es", Some("root"), Some("other")),
            "postgres://app:secret@db/es"
        );
        assert_eq!(
            merge_credentials("postgres://app@db/es", None, Some("pw")),
            "postgres://app:pw@db/es"
        );
    }
}
