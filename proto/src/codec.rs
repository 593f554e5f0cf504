//! Helpers shared by the element codecs: base64 fields, required attributes and children.

use crate::error::{Error, Result};
use crate::xml::Element;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Encodes bytes as standard base64 with padding.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding (surrounding whitespace ignored), at most `max` bytes.
pub(crate) fn unb64(text: &str, field: &'static str, max: usize) -> Result<Vec<u8>> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.len() > max.div_ceil(3) * 4 {
        return Err(Error::Length { field, expected: max, actual: text.len() / 4 * 3 });
    }
    STANDARD.decode(text).map_err(|_| Error::Base64 { field })
}

/// Decodes base64 that must be exactly `N` bytes.
pub(crate) fn unb64_fixed<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N]> {
    let bytes = unb64(text, field, N)?;
    bytes.as_slice().try_into().map_err(|_| Error::Length { field, expected: N, actual: bytes.len() })
}

/// Checks the element's name and namespace.
pub(crate) fn expect(element: &Element, name: &str, ns: &str, expected: &'static str) -> Result<()> {
    if element.is(name, ns) {
        Ok(())
    } else {
        Err(Error::UnexpectedElement { expected, found: element.qualified_name() })
    }
}

/// A required attribute.
pub(crate) fn attr<'e>(element: &'e Element, name: &'static str) -> Result<&'e str> {
    element.get_attr(name).ok_or(Error::Missing(name))
}

/// The text of a required child element in the same namespace as `element`.
pub(crate) fn child_text<'e>(element: &'e Element, name: &'static str) -> Result<&'e str> {
    element.get_child(name, element.ns()).map(Element::get_text).ok_or(Error::Missing(name))
}

/// Parses a decimal attribute.
pub(crate) fn number<T: core::str::FromStr>(element: &Element, name: &'static str) -> Result<T> {
    let text = attr(element, name)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidValue(name));
    }
    text.parse().map_err(|_| Error::InvalidValue(name))
}

/// Appends a length-prefixed (u32 big-endian) field.
pub(crate) fn put_lp(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// Reads fields written by [`put_lp`] and fixed-size integers, refusing truncation.
pub(crate) struct Cursor<'b> {
    rest: &'b [u8],
}

impl<'b> Cursor<'b> {
    pub(crate) fn new(bytes: &'b [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        if self.rest.len() < n {
            return Err(Error::InvalidValue("truncated payload"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }

    pub(crate) fn lp(&mut self) -> Result<&'b [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn rest(self) -> &'b [u8] {
        self.rest
    }
}
