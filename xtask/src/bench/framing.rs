//! A tiny framer for the bench's own XMPP streams: top-level elements cut out of a byte buffer, their attributes read raw.
//!
//! It knows just enough for the load generator and the null component, whose peers are the
//! servers started by the bench: the stream header, `</stream:stream>`, and complete top-level
//! elements (which never nest one of the same name). Incomplete input is `Ok(None)`: read more.

use anyhow::{Result, bail};

/// The most a stream may buffer before a frame completes.
pub(crate) const MAX_BUFFER: usize = 1 << 20;

/// One thing at the front of the buffer; `len` counts the bytes to consume, leading whitespace included.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// `<?xml …?>` or `<stream:stream …>`: its start tag without `<` and `>`.
    Header { tag: &'a str, len: usize },
    /// A complete top-level element: its name and start tag (without `<` and `>`).
    Element { name: &'a str, tag: &'a str, len: usize },
    /// `</stream:stream>`.
    End,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The end (`>`) of the tag that starts at `start`, outside quoted attribute values.
fn tag_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(start) {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn text(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the stream is not UTF-8"))
}

/// The next frame at the front of `buf`, `Ok(None)` when more input is needed.
pub(crate) fn next(buf: &[u8]) -> Result<Option<Frame<'_>>> {
    let Some(start) = buf.iter().position(|b| !b.is_ascii_whitespace()) else { return Ok(None) };
    if buf[start] != b'<' {
        bail!(
            "text at the top level of the stream: {:?}",
            String::from_utf8_lossy(&buf[start..buf.len().min(start + 80)])
        );
    }
    let Some(end) = tag_end(buf, start) else {
        return if buf.len() > MAX_BUFFER { bail!("a tag longer than {MAX_BUFFER} bytes") } else { Ok(None) };
    };
    let tag = text(&buf[start + 1..end])?;
    if tag.starts_with('?') {
        return Ok(Some(Frame::Header { tag, len: end + 1 }));
    }
    if let Some(name) = tag.strip_prefix('/') {
        if name.trim() == "stream:stream" {
            return Ok(Some(Frame::End));
        }
        bail!("an unexpected closing tag </{name}>");
    }
    let name = tag.split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or_default();
    if name == "stream:stream" {
        return Ok(Some(Frame::Header { tag, len: end + 1 }));
    }
    if tag.ends_with('/') {
        return Ok(Some(Frame::Element { name, tag, len: end + 1 }));
    }
    let close = format!("</{name}>");
    match find(buf, close.as_bytes(), end + 1) {
        Some(at) => Ok(Some(Frame::Element { name, tag, len: at + close.len() })),
        None if buf.len() > MAX_BUFFER => bail!("an element longer than {MAX_BUFFER} bytes"),
        None => Ok(None),
    }
}

/// The raw (still escaped) value of attribute `name` in a start tag, as written by the peer.
pub(crate) fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag.trim_end_matches('/');
    rest = &rest[rest.find(|c: char| c.is_ascii_whitespace())?..];
    loop {
        rest = rest.trim_start();
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let value = rest[eq + 1..].trim_start();
        let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let close = value[1..].find(quote)? + 1;
        if key == name {
            return Some(&value[1..close]);
        }
        rest = &value[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_headers_elements_and_the_end() -> Result<()> {
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='abc' version='1.0'>\
                      <iq type='result' id='7' to='a@b/c'/> <iq type=\"result\" id=\"8\"><keys a='x>y'><item/></keys></iq></stream:stream>";
        let mut buf = stream.as_bytes();
        let mut seen = Vec::new();
        while let Some(frame) = next(buf)? {
            let len = match frame {
                Frame::Header { tag, len } => {
                    seen.push(format!("header {:?}", attr(tag, "id")));
                    len
                }
                Frame::Element { name, tag, len } => {
                    seen.push(format!("{name} {:?} {:?}", attr(tag, "id"), attr(tag, "type")));
                    len
                }
                Frame::End => {
                    seen.push("end".into());
                    break;
                }
            };
            buf = &buf[len..];
        }
        assert_eq!(
            seen,
            [
                "header None",
                "header Some(\"abc\")",
                "iq Some(\"7\") Some(\"result\")",
                "iq Some(\"8\") Some(\"result\")",
                "end"
            ]
        );
        Ok(())
    }

    #[test]
    fn incomplete_input_asks_for_more() -> Result<()> {
        assert_eq!(next(b"")?, None);
        assert_eq!(next(b"  \n")?, None);
        assert_eq!(next(b"<iq id='1")?, None);
        assert_eq!(next(b"<iq id='1'><ping/>")?, None);
        assert!(next(b"hello").is_err());
        assert!(next(b"</iq>").is_err());
        assert!(next(&[b'<', b'a', 0xff, b'/', b'>']).is_err());
        Ok(())
    }

    #[test]
    fn attributes() {
        let tag = "iq from='a@b/c' to=\"keys.b\" id='9' type='get'/";
        assert_eq!(attr(tag, "from"), Some("a@b/c"));
        assert_eq!(attr(tag, "to"), Some("keys.b"));
        assert_eq!(attr(tag, "type"), Some("get"));
        assert_eq!(attr(tag, "xmlns"), None);
        assert_eq!(attr("iq", "id"), None);
        assert_eq!(attr("iq id=broken", "id"), None);
    }
}
