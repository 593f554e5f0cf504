//! The incremental stream decoder: finds stanza boundaries byte by byte, then parses each stanza.
//!
//! A small lexer tracks tags, quotes and CDATA so that framing never rescans
//! bytes (feeding one byte at a time costs the same as one big read). Complete
//! stanzas are parsed by `keyward_proto::xml::Element::parse` inside a wrapper
//! that repeats the stream header's namespace declarations.

use keyward_proto::xml::{Element, ParseLimits};
use quick_xml::escape::escape;

use super::{Frame, NS_COMPONENT, NS_STREAM_ERRORS, NS_STREAMS, StreamCondition, StreamHeader};
use crate::error::{Error, Result};

/// Size bounds of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest stanza, in bytes (RFC 6120 stanza including its start and end tags).
    pub max_stanza: usize,
    /// Largest stream header or XML declaration, in bytes.
    pub max_header: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        Self { max_stanza: keyward_proto::limits::STANZA_BYTES, max_header: 4096 }
    }
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data between tags.
    Text,
    /// Just after `<`.
    Lt,
    /// After `<!`, having matched this many bytes of `[CDATA[`.
    Bang(usize),
    /// Inside a CDATA section, after this many consecutive `]`.
    CData(u8),
    /// Inside `<?...`, the last byte being `?` or not.
    Pi(bool),
    /// Inside a start tag (`end == false`) or an end tag.
    Tag { end: bool, quote: Option<u8>, slash: bool },
}

const CDATA: &[u8] = b"[CDATA[";
const STANZA_NAMESPACES: [&str; 3] = [NS_COMPONENT, "jabber:client", "jabber:server"];

/// Turns bytes from the server into [`Frame`]s. See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    limits: DecoderLimits,
    buf: Vec<u8>,
    pos: usize,
    lex: Lex,
    depth: usize,
    tag_start: usize,
    stanza_start: Option<usize>,
    head_end: Option<usize>,
    skipping: Option<Option<Element>>,
    wrapper: Option<String>,
    finished: bool,
}

fn stream_err(condition: StreamCondition, detail: impl Into<String>) -> Error {
    Error::Stream { condition, detail: detail.into() }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecoderLimits::default())
    }
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new(limits: DecoderLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            lex: Lex::Text,
            depth: 0,
            tag_start: 0,
            stanza_start: None,
            head_end: None,
            skipping: None,
            wrapper: None,
            finished: false,
        }
    }

    /// Appends bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.finished {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held for a frame not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed (or the stream ended).
    ///
    /// After an error or [`Frame::Close`] the decoder yields nothing more.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.finished {
            return Ok(None);
        }
        let result = self.scan();
        if matches!(result, Err(_) | Ok(Some(Frame::Close))) {
            self.finished = true;
        }
        result
    }

    fn compact(&mut self) {
        let keep = match (self.stanza_start, self.lex) {
            (Some(start), _) => start,
            (None, Lex::Text | Lex::CData(_)) => self.pos,
            (None, _) if self.skipping.is_some() => self.pos,
            (None, _) => self.tag_start.min(self.pos),
        };
        if keep == 0 {
            return;
        }
        self.buf.drain(..keep);
        self.pos -= keep;
        self.tag_start = self.tag_start.saturating_sub(keep);
        self.stanza_start = self.stanza_start.map(|s| s - keep);
        self.head_end = self.head_end.map(|h| h.saturating_sub(keep));
    }

    fn scan(&mut self) -> Result<Option<Frame>> {
        while self.pos < self.buf.len() {
            let byte = self.buf[self.pos];
            self.check_size()?;
            let frame = self.step(byte)?;
            self.pos += 1;
            if frame.is_some() {
                return Ok(frame);
            }
        }
        Ok(None)
    }

    /// Enters skip mode when the stanza in progress outgrows the limit.
    fn check_size(&mut self) -> Result<()> {
        if self.depth == 0 && self.lex != Lex::Text && self.pos - self.tag_start >= self.limits.max_header {
            return Err(stream_err(StreamCondition::PolicyViolation, "stream header too large"));
        }
        if let Some(start) = self.stanza_start
            && self.pos - start >= self.limits.max_stanza
        {
            let head = self.head_end.and_then(|end| self.parse_head(start, end));
            self.skipping = Some(head);
            self.stanza_start = None;
            self.head_end = None;
        }
        Ok(())
    }

    fn step(&mut self, byte: u8) -> Result<Option<Frame>> {
        match self.lex {
            Lex::Text => {
                if byte == b'<' {
                    self.tag_start = self.pos;
                    self.lex = Lex::Lt;
                    if self.depth == 1 && self.skipping.is_none() {
                        self.stanza_start = Some(self.pos);
                    }
                } else if self.depth < 2 && !byte.is_ascii_whitespace() {
                    return Err(stream_err(StreamCondition::BadFormat, "text outside stanzas"));
                }
            }
            Lex::Lt => match byte {
                b'/' => self.lex = Lex::Tag { end: true, quote: None, slash: false },
                b'!' if self.depth >= 2 => self.lex = Lex::Bang(0),
                b'!' => return Err(stream_err(StreamCondition::RestrictedXml, "comment or DTD between stanzas")),
                b'?' if self.depth == 0 => self.lex = Lex::Pi(false),
                b'?' => return Err(stream_err(StreamCondition::RestrictedXml, "processing instruction")),
                b if b.is_ascii_whitespace() || b"<>=\"'".contains(&b) => {
                    return Err(stream_err(StreamCondition::NotWellFormed, "bad character after <"));
                }
                _ => self.lex = Lex::Tag { end: false, quote: None, slash: false },
            },
            Lex::Bang(matched) => {
                if CDATA.get(matched) != Some(&byte) {
                    return Err(stream_err(StreamCondition::RestrictedXml, "comment or DTD inside a stanza"));
                }
                self.lex = if matched + 1 == CDATA.len() { Lex::CData(0) } else { Lex::Bang(matched + 1) };
            }
            Lex::CData(brackets) => {
                self.lex = match byte {
                    b']' => Lex::CData((brackets + 1).min(2)),
                    b'>' if brackets == 2 => Lex::Text,
                    _ => Lex::CData(0),
                };
            }
            Lex::Pi(question) => {
                if byte == b'>' && question {
                    let decl = &self.buf[self.tag_start..=self.pos];
                    let is_decl = decl.len() > 6 && decl.starts_with(b"<?xml") && decl[5].is_ascii_whitespace();
                    if !is_decl {
                        return Err(stream_err(StreamCondition::RestrictedXml, "processing instruction"));
                    }
                    self.lex = Lex::Text;
                } else {
                    self.lex = Lex::Pi(byte == b'?');
                }
            }
            Lex::Tag { end, quote: Some(q), .. } => {
                if byte == q {
                    self.lex = Lex::Tag { end, quote: None, slash: false };
                }
            }
            Lex::Tag { end, quote: None, slash } => match byte {
                b'\'' | b'"' => self.lex = Lex::Tag { end, quote: Some(byte), slash: false },
                b'<' => return Err(stream_err(StreamCondition::NotWellFormed, "< inside a tag")),
                b'>' => {
                    self.lex = Lex::Text;
                    return self.tag_done(end, slash);
                }
                _ => self.lex = Lex::Tag { end, quote: None, slash: byte == b'/' },
            },
        }
        Ok(None)
    }

    /// A tag ended at `self.pos`.
    fn tag_done(&mut self, end: bool, self_closing: bool) -> Result<Option<Frame>> {
        let tag_end = self.pos + 1;
        if end {
            match self.depth {
                0 => return Err(stream_err(StreamCondition::NotWellFormed, "end tag before the stream header")),
                1 => return Ok(Some(Frame::Close)),
                _ => {}
            }
            self.depth -= 1;
            return if self.depth == 1 { self.stanza_done(tag_end).map(Some) } else { Ok(None) };
        }
        if self_closing {
            return match self.depth {
                0 => Err(stream_err(StreamCondition::BadFormat, "empty stream header")),
                1 => self.stanza_done(tag_end).map(Some),
                _ => Ok(None),
            };
        }
        self.depth += 1;
        match self.depth {
            1 => {
                let header = StreamHeader::parse(&self.buf[self.tag_start..tag_end])?;
                self.wrapper = Some(wrapper_open(&header));
                Ok(Some(Frame::Header(header)))
            }
            2 if self.skipping.is_none() => {
                self.head_end = Some(tag_end);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The stanza that started at `stanza_start` ended just before `end`.
    fn stanza_done(&mut self, end: usize) -> Result<Frame> {
        self.head_end.take();
        if let Some(head) = self.skipping.take() {
            return Ok(Frame::Oversize { head });
        }
        let Some(start) = self.stanza_start.take() else {
            return Err(stream_err(StreamCondition::NotWellFormed, "stanza without a start"));
        };
        let element = match self.parse_wrapped(&self.buf[start..end]) {
            Ok(element) => element,
            Err(keyward_proto::Error::TooLarge { .. }) => {
                let head = self.head_end_of(start, end).and_then(|h| self.parse_head(start, h));
                return Ok(Frame::Oversize { head });
            }
            Err(err) => return Err(stream_err(StreamCondition::NotWellFormed, err.to_string())),
        };
        classify(element)
    }

    /// Finds the end of the start tag of the stanza at `start` (for a stanza refused by the parser limits).
    fn head_end_of(&self, start: usize, end: usize) -> Option<usize> {
        let mut quote = None;
        for (i, &b) in self.buf[start..end].iter().enumerate() {
            match (quote, b) {
                (Some(q), b) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(b),
                (None, b'>') => return Some(start + i + 1),
                _ => {}
            }
        }
        None
    }

    /// Parses a stanza's start tag alone, as an element without children.
    fn parse_head(&self, start: usize, end: usize) -> Option<Element> {
        let tag = &self.buf[start..end];
        let mut head = tag.to_vec();
        if !tag.ends_with(b"/>") {
            head.pop();
            head.extend_from_slice(b"/>");
        }
        self.parse_wrapped(&head).ok()
    }

    fn parse_wrapped(&self, stanza: &[u8]) -> core::result::Result<Element, keyward_proto::Error> {
        let open = self.wrapper.as_deref().unwrap_or("<w>");
        let mut wrapped = Vec::with_capacity(open.len() + stanza.len() + 4);
        wrapped.extend_from_slice(open.as_bytes());
        wrapped.extend_from_slice(stanza);
        wrapped.extend_from_slice(b"</w>");
        let base = ParseLimits::STANZA;
        let limits = ParseLimits {
            max_bytes: wrapped.len(),
            max_depth: base.max_depth + 1,
            max_elements: base.max_elements + 1,
            ..base
        };
        let root = Element::parse(&wrapped, &limits)?;
        match root.children() {
            [only] => Ok(only.clone()),
            _ => Err(keyward_proto::Error::Xml("not exactly one stanza".into())),
        }
    }
}

fn wrapper_open(header: &StreamHeader) -> String {
    let mut out = String::from("<w");
    for (name, value) in &header.namespaces {
        out.push_str(&format!(" {name}='{}'", escape(value.as_str())));
    }
    out.push('>');
    out
}

fn classify(element: Element) -> Result<Frame> {
    if element.is("handshake", NS_COMPONENT) {
        return Ok(Frame::Handshake);
    }
    if element.is("error", NS_STREAMS) {
        let condition = element
            .children()
            .iter()
            .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
            .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned());
        let text = element.get_child("text", NS_STREAM_ERRORS).map(|t| t.get_text().to_owned());
        return Ok(Frame::StreamError { condition, text });
    }
    if matches!(element.name(), "iq" | "message" | "presence") && STANZA_NAMESPACES.contains(&element.ns()) {
        return Ok(Frame::Stanza(element));
    }
    Err(stream_err(StreamCondition::UnsupportedStanzaType, format!("<{}>", element.qualified_name())))
}

#[cfg(test)]
mod tests;
