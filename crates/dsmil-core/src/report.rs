//! Reporting errors as text where they cross a boundary that only carries a message (an HTTP
//! error body, a port's `PortError`, a log field): the error and every source, `a: b: c`.

/// `err` and its sources as one line: `store error: inserting 3 records: disk full`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Errors that already print their source inline would otherwise repeat it.
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening the journal")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_source_is_named_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "opening the journal: disk full");
        assert_eq!(chain(&std::io::Error::other("x")), "x");
    }
}
