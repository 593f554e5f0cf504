//! `<transparency>` in a `<keys>` answer: the signed epoch head every item's akd proof is for, with the log proofs a client checks it by.

use super::NS;
use crate::codec::{b64, expect, number, unb64};
use crate::error::{Error, Result};
use crate::transparency::heads::LogHash;
use crate::transparency::heads::note::MAX_NOTE_BYTES;
use crate::transparency::heads::proof::{proof_from_bytes, proof_to_bytes};
use crate::transparency::lookup::MAX_LOOKUP_PROOF_BYTES;
use crate::xml::Element;

/// Most items of a `<keys>` query that asks for proofs (`known-size`): eight items with proofs
/// of a map of a million accounts fit in a 64 KiB stanza.
pub const KEYS_PROOF_ITEMS: usize = 8;
/// Most hashes of one log proof (a log of 2^64 epochs needs at most 128).
const MAX_LOG_PROOF_HASHES: usize = 128;

/// The head an answer's proofs are for, and the log proofs that place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadProofs {
    /// keydir's signed note of the head (C2SP checkpoint with the `keyward-epoch` line), as text.
    pub note: String,
    /// The inclusion proof of the log's last leaf (the head's epoch line) in the head's tree.
    pub inclusion: Vec<LogHash>,
    /// The consistency proof from the size the client said it knows (`known-size`) to the
    /// head's: absent when the client knows none, or knows a size this head cannot extend.
    pub consistency: Option<Consistency>,
}

/// A consistency proof of the epoch log from an older size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistency {
    /// The older size.
    pub from: u64,
    /// `PROOF(from, D[0:size])` (RFC 6962), empty when `from` is the head's size.
    pub proof: Vec<LogHash>,
}

fn hashes(element: &Element, field: &'static str) -> Result<Vec<LogHash>> {
    proof_from_bytes(&unb64(element.get_text(), field, MAX_LOG_PROOF_HASHES * 32)?)
}

impl HeadProofs {
    /// Decodes `<transparency>`.
    pub fn from_element(element: &Element) -> Result<Self> {
        expect(element, "transparency", NS, "{urn:keyward:0}transparency")?;
        let head = element.get_child("head", NS).ok_or(Error::Missing("head"))?;
        let note = String::from_utf8(unb64(head.get_text(), "head", MAX_NOTE_BYTES)?)
            .map_err(|_| Error::InvalidValue("head"))?;
        let inclusion = hashes(element.get_child("inclusion", NS).ok_or(Error::Missing("inclusion"))?, "inclusion")?;
        let consistency = element
            .get_child("consistency", NS)
            .map(|c| Ok::<_, Error>(Consistency { from: number(c, "from")?, proof: hashes(c, "consistency")? }))
            .transpose()?;
        Ok(Self { note, inclusion, consistency })
    }

    /// Encodes as `<transparency>`.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("transparency", NS)
            .child(Element::new("head", NS).text(b64(self.note.as_bytes())))
            .child(Element::new("inclusion", NS).text(b64(&proof_to_bytes(&self.inclusion))));
        if let Some(c) = &self.consistency {
            element = element.child(
                Element::new("consistency", NS).attr("from", c.from.to_string()).text(b64(&proof_to_bytes(&c.proof))),
            );
        }
        element
    }
}

/// Decodes an item's `<proof>` (akd's `LookupProof`, protobuf, base64), if it has one.
pub(super) fn item_proof(item: &Element) -> Result<Option<Vec<u8>>> {
    item.get_child("proof", NS).map(|p| unb64(p.get_text(), "proof", MAX_LOOKUP_PROOF_BYTES)).transpose()
}

/// An item's `<proof>` element.
pub(super) fn proof_element(proof: &[u8]) -> Element {
    Element::new("proof", NS).text(b64(proof))
}

/// The `known-size` attribute of a `<keys>` query: present when the client asks for proofs.
pub(super) fn known_size(query: &Element) -> Result<Option<u64>> {
    query.get_attr("known-size").map(|_| number(query, "known-size")).transpose()
}

/// `<history>` in an IQ get: the map's whole history of the sender's own account, for the
/// account's own client to monitor its key (protocol section 15.3.3). Only ever about the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The size of the newest head the client verified (0 for none).
    pub known_size: u64,
}

impl HistoryQuery {
    /// Decodes `<history known-size='N'/>`.
    pub fn from_element(element: &Element) -> Result<Self> {
        expect(element, "history", NS, "{urn:keyward:0}history")?;
        if !element.children().is_empty() {
            return Err(Error::InvalidValue("history query has children"));
        }
        Ok(Self { known_size: number(element, "known-size")? })
    }

    /// Encodes as `<history known-size='N'/>`.
    pub fn to_element(&self) -> Element {
        Element::new("history", NS).attr("known-size", self.known_size.to_string())
    }
}

/// Most bytes of an encoded history proof in a `<history>` answer.
const MAX_HISTORY_PROOF_BYTES: usize = crate::transparency::lookup::MAX_HISTORY_PROOF_BYTES;

/// `<history>` in an IQ result: akd's history proof of the sender's account (absent when the
/// account is not in the map) and the signed head it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAnswer {
    /// The signed head and its log proofs (absent before the first epoch).
    pub transparency: Option<HeadProofs>,
    /// akd's `HistoryProof`, protobuf.
    pub proof: Option<Vec<u8>>,
}

impl HistoryAnswer {
    /// Decodes `<history>`.
    pub fn from_element(element: &Element) -> Result<Self> {
        expect(element, "history", NS, "{urn:keyward:0}history")?;
        let transparency = element.get_child("transparency", NS).map(HeadProofs::from_element).transpose()?;
        let proof = element
            .get_child("proof", NS)
            .map(|p| unb64(p.get_text(), "proof", MAX_HISTORY_PROOF_BYTES))
            .transpose()?;
        Ok(Self { transparency, proof })
    }

    /// Encodes as `<history>`.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("history", NS);
        if let Some(head) = &self.transparency {
            element = element.child(head.to_element());
        }
        match &self.proof {
            Some(proof) => element.child(Element::new("proof", NS).text(b64(proof))),
            None => element,
        }
    }
}
