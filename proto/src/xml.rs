//! A small, bounded XML element tree: parsed from bytes with hard limits, written back escaped.
//!
//! This is the only place in `keyward-proto` that reads XML. It refuses DTDs,
//! processing instructions and every entity but the five predefined ones and
//! character references, so no input can make it expand or fetch anything.
//! Mixed content is simplified: an element keeps its child elements and the
//! concatenation of its direct text.

use crate::error::{Error, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Hard limits applied while parsing, before any allocation can grow past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted (the root is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Most elements in the whole tree.
    pub max_elements: usize,
}

impl ParseLimits {
    /// The limits for one stanza handled by the component (64 KiB).
    pub const STANZA: Self = Self { max_bytes: 64 * 1024, max_depth: 16, max_attributes: 32, max_elements: 1024 };
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self::STANZA
    }
}

/// An XML element with its resolved namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    /// A new empty element `name` in namespace `ns` (empty for none).
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Self { name: name.into(), ns: ns.into(), ..Self::default() }
    }

    /// Adds (or replaces) an attribute, builder style.
    #[must_use]
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Adds a child element, builder style.
    #[must_use]
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the text content, builder style.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Adds (or replaces) an attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes an attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let at = self.attrs.iter().position(|(n, _)| n == name)?;
        Some(self.attrs.remove(at).1)
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        self.children.push(child);
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace URI (empty for none).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Whether this element has this local name and namespace.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// An attribute's value. Prefixed attributes are keyed by their qualified name (`xml:lang`).
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All attributes in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The child elements.
    pub fn children(&self) -> &[Element] {
        &self.children
    }

    /// The first child with this name and namespace.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name, ns))
    }

    /// The direct text content (concatenated).
    pub fn get_text(&self) -> &str {
        &self.text
    }

    /// `{namespace}name`, for error messages.
    pub fn qualified_name(&self) -> String {
        format!("{{{}}}{}", self.ns, self.name)
    }

    /// Parses exactly one element from `input`, within `limits`.
    pub fn parse(input: &[u8], limits: &ParseLimits) -> Result<Self> {
        if input.len() > limits.max_bytes {
            return Err(Error::TooLarge { what: "XML input", limit: limits.max_bytes });
        }
        let text = core::str::from_utf8(input).map_err(|_| Error::Xml("not UTF-8".into()))?;
        Parser { reader: NsReader::from_str(text), limits, elements: 0 }.document()
    }

    /// Writes this element as XML; `xmlns` is declared where the namespace changes.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out, "");
        out
    }

    /// Writes this element into `out`, declaring `xmlns` if it differs from `parent_ns`.
    pub fn write_into(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            push_attr(out, "xmlns", &self.ns);
        }
        for (name, value) in &self.attrs {
            push_attr(out, name, value);
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        push_escaped(out, &self.text, false);
        for child in &self.children {
            child.write_into(out, &self.ns);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    push_escaped(out, value, true);
    out.push('\'');
}

/// Whether XML 1.0 allows `c` in a document at all.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends `text` escaped for content or (`in_attr`) a quoted attribute, where tabs and
/// newlines are written as references so that attribute normalisation keeps them. Characters
/// XML cannot carry at all (most control characters) become U+FFFD, so that whatever a
/// value holds, the output stays well-formed and a server will not drop the stream.
fn push_escaped(out: &mut String, text: &str, in_attr: bool) {
    let bytes = text.as_bytes();
    // `text[start..i]` is copied as it is when a character needs writing otherwise.
    let (mut start, mut i) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        // The common case, printable ASCII that needs no reference, costs one test.
        if (0x20..0x7f).contains(&b) && !matches!(b, b'&' | b'<' | b'>' | b'\'' | b'"') {
            i += 1;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else { break };
        let replacement = match c {
            '\n' if in_attr => "&#10;",
            '\t' if in_attr => "&#9;",
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '\'' => "&apos;",
            '"' => "&quot;",
            '\r' => "&#13;",
            c if is_xml_char(c) => {
                i += c.len_utf8();
                continue;
            }
            _ => "\u{FFFD}",
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        out.push_str(replacement);
        i += c.len_utf8();
        start = i;
    }
    out.push_str(text.get(start..).unwrap_or_default());
}

struct Parser<'i, 'l> {
    reader: NsReader<&'i [u8]>,
    limits: &'l ParseLimits,
    elements: usize,
}

fn xml_err(err: impl core::fmt::Display) -> Error {
    Error::Xml(err.to_string())
}

impl Parser<'_, '_> {
    fn document(mut self) -> Result<Element> {
        let mut root: Option<Element> = None;
        loop {
            let (ns, event) = self.reader.read_resolved_event().map_err(xml_err)?;
            match event {
                Event::Decl(_) | Event::Comment(_) => {}
                Event::Text(t) if root.is_none() || is_blank(&t) => {
                    if !is_blank(&t) {
                        return Err(Error::Xml("text outside the root element".into()));
                    }
                }
                Event::Start(start) if root.is_none() => {
                    let ns = ns_string(ns)?;
                    root = Some(self.element(ns, &start, false, 1)?);
                }
                Event::Empty(start) if root.is_none() => {
                    let ns = ns_string(ns)?;
                    root = Some(self.element(ns, &start, true, 1)?);
                }
                Event::Eof => return root.ok_or_else(|| Error::Xml("no element".into())),
                Event::DocType(_) => return Err(Error::Xml("DTDs are not allowed".into())),
                Event::PI(_) => return Err(Error::Xml("processing instructions are not allowed".into())),
                _ => return Err(Error::Xml("content after the root element".into())),
            }
        }
    }

    fn element(&mut self, ns: String, start: &BytesStart<'_>, empty: bool, depth: usize) -> Result<Element> {
        if depth > self.limits.max_depth {
            return Err(Error::TooLarge { what: "element nesting", limit: self.limits.max_depth });
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(Error::TooLarge { what: "element count", limit: self.limits.max_elements });
        }
        let name = utf8(start.local_name().into_inner())?.to_owned();
        let mut element = Element::new(name, ns);
        for attr in start.attributes() {
            let attr = attr.map_err(xml_err)?;
            let key = attr.key;
            if key.as_namespace_binding().is_some() {
                continue;
            }
            if element.attrs.len() >= self.limits.max_attributes {
                return Err(Error::TooLarge { what: "attribute count", limit: self.limits.max_attributes });
            }
            let key = utf8(key.into_inner())?.to_owned();
            let value = attr.unescape_value().map_err(xml_err)?.into_owned();
            check_chars(&value)?;
            if element.get_attr(&key).is_some() {
                return Err(Error::Xml(format!("duplicate attribute {key}")));
            }
            element.attrs.push((key, value));
        }
        if empty {
            return Ok(element);
        }
        loop {
            let (ns, event) = self.reader.read_resolved_event().map_err(xml_err)?;
            match event {
                Event::Start(child) => {
                    let ns = ns_string(ns)?;
                    let child = self.element(ns, &child, false, depth + 1)?;
                    element.children.push(child);
                }
                Event::Empty(child) => {
                    let ns = ns_string(ns)?;
                    let child = self.element(ns, &child, true, depth + 1)?;
                    element.children.push(child);
                }
                Event::Text(text) => element.text.push_str(check_chars(&text.decode().map_err(xml_err)?)?),
                Event::CData(data) => element.text.push_str(check_chars(&data.decode().map_err(xml_err)?)?),
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref().map_err(xml_err)? {
                        Some(c) => c,
                        None => predefined_entity(&reference.decode().map_err(xml_err)?)?,
                    };
                    if !is_xml_char(resolved) {
                        return Err(Error::Xml("character reference to a character XML forbids".into()));
                    }
                    element.text.push(resolved);
                }
                Event::End(_) => return Ok(element),
                Event::Comment(_) => {}
                Event::Eof => return Err(Error::Xml("unexpected end of input".into())),
                Event::DocType(_) => return Err(Error::Xml("DTDs are not allowed".into())),
                Event::PI(_) => return Err(Error::Xml("processing instructions are not allowed".into())),
                Event::Decl(_) => return Err(Error::Xml("misplaced XML declaration".into())),
            }
        }
    }
}

/// Refuses characters that XML 1.0 does not allow (NUL and most control characters).
fn check_chars(text: &str) -> Result<&str> {
    // Printable ASCII (nearly all of it: base64) is checked bytewise first.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) || text.chars().all(is_xml_char) {
        Ok(text)
    } else {
        Err(Error::Xml("character not allowed in XML".into()))
    }
}

/// Resolves the five predefined entities; any other entity is refused.
pub(crate) fn predefined_entity(name: &str) -> Result<char> {
    match name {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        _ => Err(Error::Xml(format!("undefined entity &{name};"))),
    }
}

fn is_blank(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    core::str::from_utf8(bytes).map_err(|_| Error::Xml("not UTF-8".into()))
}

fn ns_string(ns: ResolveResult<'_>) -> Result<String> {
    match ns {
        ResolveResult::Bound(ns) => Ok(utf8(ns.into_inner())?.to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => {
            Err(Error::Xml(format!("unbound prefix {}", String::from_utf8_lossy(&prefix))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Element> {
        Element::parse(text.as_bytes(), &ParseLimits::STANZA)
    }

    #[test]
    fn parses_namespaces_attributes_and_text() {
        let e =
            parse("<?xml version='1.0'?><a xmlns='urn:x' k='v &amp; w'><b>t&lt;1&#65;</b><p:c xmlns:p='urn:y'/></a>")
                .expect("parses");
        assert!(e.is("a", "urn:x"));
        assert_eq!(e.get_attr("k"), Some("v & w"));
        assert_eq!(e.get_child("b", "urn:x").map(Element::get_text), Some("t<1A"));
        assert!(e.get_child("c", "urn:y").is_some());
    }

    #[test]
    fn write_then_parse_is_identity() {
        let e = Element::new("a", "urn:x")
            .attr("k", "it's <&> \"quoted\"")
            .child(Element::new("b", "urn:x").text("x < y & z"))
            .child(Element::new("c", "urn:y"));
        assert_eq!(parse(&e.to_xml()).expect("parses"), e);
    }

    #[test]
    fn output_is_well_formed_whatever_the_values() {
        let e =
            Element::new("a", "urn:x").attr("k", "nul\u{0}bell\u{7}cr\r").attr("n", "a\nb\tc").text("esc\u{1b}[31m");
        let xml = e.to_xml();
        let back = parse(&xml).expect("well-formed");
        assert_eq!(back.get_attr("k"), Some("nul\u{FFFD}bell\u{FFFD}cr\r"));
        assert_eq!(back.get_attr("n"), Some("a\nb\tc"));
        assert!(xml.contains("a&#10;b&#9;c"), "{xml}");
        assert_eq!(back.get_text(), "esc\u{FFFD}[31m");
    }

    #[test]
    fn refuses_dtd_entities_and_junk() {
        let cases = [
            "<!DOCTYPE a [<!ENTITY x 'boom'>]><a>&x;</a>",
            "<a>&x;</a>",
            "<?pi x?><a/>",
            "<a><b></a>",
            "<a/><b/>",
            "text<a/>",
            "<a></a>trailing",
            "<p:a/>",
            "<a k='1' k='2'/>",
            "<a>nul\u{0}</a>",
            "<a k='bell\u{7}'/>",
            "<a>&#0;</a>",
            "<a>&#x1b;</a>",
            "",
            "<a>",
        ];
        for case in cases {
            assert!(parse(case).is_err(), "accepted {case:?}");
        }
    }

    #[test]
    fn enforces_limits() {
        let limits = ParseLimits { max_bytes: 100, max_depth: 3, max_attributes: 2, max_elements: 5 };
        let parse = |t: &str| Element::parse(t.as_bytes(), &limits);
        assert!(matches!(parse(&format!("<a>{}</a>", "x".repeat(200))), Err(Error::TooLarge { .. })));
        assert!(matches!(parse("<a><b><c><d/></c></b></a>"), Err(Error::TooLarge { .. })));
        assert!(parse("<a><b><c/></b></a>").is_ok());
        assert!(matches!(parse("<a x='1' y='2' z='3'/>"), Err(Error::TooLarge { .. })));
        assert!(matches!(parse("<a><b/><b/><b/><b/><b/></a>"), Err(Error::TooLarge { .. })));
        assert!(matches!(Element::parse(&[0xff, 0xfe], &limits), Err(Error::Xml(_))));
    }
}
