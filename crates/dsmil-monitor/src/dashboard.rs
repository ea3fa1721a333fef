//! The live dashboard: one self-contained page (HTML, CSS and JS; no CDN) that speaks the
//! WebSocket protocol of [`crate::ws`] — charts of every layer, active alerts with the responses
//! in force, events, a software-TPM banner, reconnection with back-off. It lives beside the
//! protocol it speaks; an HTTP server serves [`PAGE`] with [`HEADERS`].

/// The page.
pub const PAGE: &str = include_str!("../dashboard/index.html");

/// The headers to serve it with: HTML, never cached, and a content security policy that allows
/// only the page's own inline script and style and connections back to its origin.
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_speaks_the_protocol() {
        assert!(PAGE.starts_with("<!doctype html") || PAGE.starts_with("<!DOCTYPE html"));
        for message in ["connection_established", "subscribe", "alert", "emergency"] {
            assert!(PAGE.contains(message), "the page does not handle {message}");
        }
    }
}
