//! A minimal HTTP/1.1 client for the CLI's calls to a running server's admin
//! API (loopback, JSON replies). Blocking, one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub fn call(admin: SocketAddr, method: &str, path: &str) -> Result<(u16, serde_json::Value), String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach the admin API at {admin}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // Changes may need the admin token: from PETREL_ADMIN_TOKEN or the file
    // PETREL_ADMIN_TOKEN_FILE names.
    let token = std::env::var("PETREL_ADMIN_TOKEN").ok().or_else(|| {
        std::env::var("PETREL_ADMIN_TOKEN_FILE")
            .ok()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|t| t.trim().to_string())
    });
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {admin}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP reply")?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("malformed HTTP status")?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    Ok((code, json))
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = b.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A call whose answer is one of the API's types; an error answer becomes
/// its message.
pub fn get<T: serde::de::DeserializeOwned>(admin: SocketAddr, path: &str) -> Result<T, String> {
    let (code, body) = call(admin, "GET", path)?;
    if !(200..300).contains(&code) {
        let why = serde_json::from_value::<petrel_api::ErrorBody>(body).map_or_else(|_| String::new(), |e| e.error);
        return Err(format!("the server answered HTTP {code}: {why}"));
    }
    serde_json::from_value(body).map_err(|e| format!("unexpected answer from the admin API: {e}"))
}
