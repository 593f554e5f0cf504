//! Every keyward protocol element as a typed value, with XML encode and decode.

use crate::bundle::{Bundle, VerifiedBundle};
use crate::codec::{attr, b64, expect, number, unb64_fixed};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::jid::BareJid;
use crate::keys::{IdentityPublic, KeyPair};
use crate::limits;
use crate::restore::{AnySecret, BlindedElement, EvaluatedElement, RestoreChallenge, sign_proof, verify_proof};
use crate::update::SecretSig;
use crate::xml::{Element, ParseLimits};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The keyward namespace, version 0.
pub const NS: &str = "urn:keyward:0";
/// The disco feature a component advertises when it can answer `roster-keys`.
pub const FEATURE_ROSTER_KEYS: &str = "urn:keyward:0#roster-keys";
/// The disco feature (and data form type) of a component that serves key transparency proofs.
pub const FEATURE_TRANSPARENCY: &str = "urn:keyward:0#transparency";
/// The body put in every encrypted message for clients without keyward.
pub const FALLBACK_BODY: &str = "[This message is end-to-end encrypted with keyward]";
/// XEP-0380 namespace.
pub const NS_EME: &str = "urn:xmpp:eme:0";
/// XEP-0334 namespace.
pub const NS_HINTS: &str = "urn:xmpp:hints";

/// A value that is one XML element of the protocol.
pub trait XmlElement: Sized {
    /// Decodes from a parsed element, checking name, namespace and every field.
    fn from_element(element: &Element) -> Result<Self>;

    /// Encodes as an element.
    fn to_element(&self) -> Element;

    /// Parses from bytes with the stanza limits, then decodes.
    fn parse(bytes: &[u8]) -> Result<Self> {
        Self::from_element(&Element::parse(bytes, &ParseLimits::STANZA)?)
    }

    /// Encodes as XML text.
    fn to_xml(&self) -> String {
        self.to_element().to_xml()
    }
}

/// The one child of an element in the keyward namespace, named `name`.
fn one_child<'e>(element: &'e Element, name: &'static str) -> Result<&'e Element> {
    element.get_child(name, NS).ok_or(Error::Missing(name))
}

/// `<publish>`: store my bundle and secret blob, the blob vouched for by my identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The public bundle (unverified until someone verifies it).
    pub bundle: Bundle,
    /// The sealed private keys, of either version (protocol sections 6 and 6.2).
    pub secret: AnySecret,
    /// The identity key's signature over the blob, with its `seq` (protocol section 6.1).
    pub secret_sig: SecretSig,
}

impl Publish {
    /// The publish of `bundle` (signed with `keys`) and `secret`, with a secret update
    /// signed by `keys` under `seq` (clients: the time in Unix milliseconds).
    pub fn signed(keys: &KeyPair, bundle: &VerifiedBundle, secret: impl Into<AnySecret>, seq: u64) -> Result<Self> {
        let secret = secret.into();
        let secret_sig = SecretSig::sign_any(keys, bundle.jid(), seq, &secret)?;
        Ok(Self { bundle: bundle.bundle().clone(), secret, secret_sig })
    }

    /// Checks everything a receiver must before storing: the bundle verifies and is
    /// `sender`'s, and the secret update verifies with the bundle's identity key.
    /// Errors: [`Error::JidMismatch`] and [`Error::BadSignature`] for the bundle,
    /// [`Error::SecretSignature`] for the secret update.
    pub fn verify_for(&self, sender: &BareJid) -> Result<VerifiedBundle> {
        let bundle = self.bundle.verify_for(sender)?;
        self.secret_sig.verify_any(bundle.identity_key(), sender, &self.secret)?;
        Ok(bundle)
    }
}

impl XmlElement for Publish {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "publish", NS, "{urn:keyward:0}publish")?;
        Ok(Self {
            bundle: Bundle::from_element(one_child(element, "bundle")?)?,
            secret: AnySecret::from_element(one_child(element, "secret")?)?,
            secret_sig: SecretSig::from_element(one_child(element, "secret-sig")?)?,
        })
    }

    fn to_element(&self) -> Element {
        Element::new("publish", NS)
            .child(self.bundle.to_element())
            .child(self.secret.to_element())
            .child(self.secret_sig.to_element())
    }
}

/// An empty request element: `<secret/>` (get) or `<roster-keys/>` (get).
macro_rules! empty_request {
    ($(#[$doc:meta])* $name:ident, $tag:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl XmlElement for $name {
            fn from_element(element: &Element) -> Result<Self> {
                expect(element, $tag, NS, concat!("{urn:keyward:0}", $tag))?;
                if !element.children().is_empty() {
                    return Err(Error::InvalidValue(concat!($tag, " query has children")));
                }
                Ok(Self)
            }

            fn to_element(&self) -> Element {
                Element::new($tag, NS)
            }
        }
    };
}

empty_request!(
    /// `<secret/>` in an IQ get: fetch my own secret blob.
    SecretQuery,
    "secret"
);
empty_request!(
    /// `<roster-keys/>` in an IQ get: my roster, annotated with keys.
    RosterKeysQuery,
    "roster-keys"
);

/// `<keys>` in an IQ get: look up the bundles of up to 100 accounts, or up to
/// [`KEYS_PROOF_ITEMS`] with the map's proofs (`known-size`, protocol section 15.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysQuery {
    items: Vec<BareJid>,
    known_size: Option<u64>,
}

impl KeysQuery {
    /// A query for these accounts (1 to 100, duplicates removed).
    pub fn new(items: Vec<BareJid>) -> Result<Self> {
        let mut unique: Vec<BareJid> = Vec::with_capacity(items.len());
        for jid in items {
            if !unique.contains(&jid) {
                unique.push(jid);
            }
        }
        if unique.is_empty() {
            return Err(Error::Missing("item"));
        }
        if unique.len() > limits::KEYS_ITEMS {
            return Err(Error::TooLarge { what: "keys query items", limit: limits::KEYS_ITEMS });
        }
        Ok(Self { items: unique, known_size: None })
    }

    /// A query for these accounts (1 to [`KEYS_PROOF_ITEMS`]) that asks for the map's proofs,
    /// saying the size of the newest epoch head the client verified (0 for none).
    pub fn with_proofs(items: Vec<BareJid>, known_size: u64) -> Result<Self> {
        let query = Self::new(items)?;
        if query.items.len() > KEYS_PROOF_ITEMS {
            return Err(Error::TooLarge { what: "keys query items with proofs", limit: KEYS_PROOF_ITEMS });
        }
        Ok(Self { known_size: Some(known_size), ..query })
    }

    /// The accounts asked for.
    pub fn items(&self) -> &[BareJid] {
        &self.items
    }

    /// When the client asks for proofs: the size of the newest head it verified (0 for none).
    pub fn known_size(&self) -> Option<u64> {
        self.known_size
    }
}

impl XmlElement for KeysQuery {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "keys", NS, "{urn:keyward:0}keys")?;
        let items = element.children().iter().filter(|c| c.is("item", NS));
        if items.clone().count() > limits::KEYS_ITEMS {
            return Err(Error::TooLarge { what: "keys query items", limit: limits::KEYS_ITEMS });
        }
        let items = items.map(|item| BareJid::parse(attr(item, "jid")?)).collect::<Result<_>>()?;
        match proofs::known_size(element)? {
            Some(known) => Self::with_proofs(items, known),
            None => Self::new(items),
        }
    }

    fn to_element(&self) -> Element {
        let query = match self.known_size {
            Some(known) => Element::new("keys", NS).attr("known-size", known.to_string()),
            None => Element::new("keys", NS),
        };
        self.items.iter().fold(query, |e, jid| e.child(Element::new("item", NS).attr("jid", jid.as_str())))
    }
}

/// The state of an account in the key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// The account has a usable bundle.
    Active,
    /// The account was revoked by an admin: never encrypt to it again.
    Revoked {
        /// When it was revoked.
        at: OffsetDateTime,
        /// The admin's reason.
        reason: String,
    },
    /// The account never published a bundle.
    None,
}

/// One account in a `<keys>` or `<roster-keys>` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyItem {
    /// The account.
    pub jid: BareJid,
    /// Its status.
    pub status: KeyStatus,
    /// Its bundle, if it ever published one (also for revoked accounts, to recognise old messages).
    pub bundle: Option<Bundle>,
    /// akd's lookup proof of the account's map value (protobuf) at the answer's head, when the
    /// client asked for proofs and the account is in the map.
    pub proof: Option<Vec<u8>>,
}

fn parse_time(text: &str, field: &'static str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| Error::InvalidValue(field))
}

fn format_time(at: &OffsetDateTime) -> String {
    // Every OffsetDateTime with a four-digit year formats as RFC 3339.
    at.format(&Rfc3339).unwrap_or_default()
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.len() > limits::REASON_BYTES {
        return Err(Error::TooLarge { what: "reason", limit: limits::REASON_BYTES });
    }
    Ok(())
}

impl KeyItem {
    fn from_element(item: &Element) -> Result<Self> {
        expect(item, "item", NS, "{urn:keyward:0}item")?;
        let jid = BareJid::parse(attr(item, "jid")?)?;
        let status = match attr(item, "status")? {
            "active" => KeyStatus::Active,
            "none" => KeyStatus::None,
            "revoked" => {
                let reason = item.get_attr("reason").unwrap_or_default().to_owned();
                check_reason(&reason)?;
                KeyStatus::Revoked { at: parse_time(attr(item, "revoked-at")?, "revoked-at")?, reason }
            }
            _ => return Err(Error::InvalidValue("status")),
        };
        let bundle = item.get_child("bundle", NS).map(Bundle::from_element).transpose()?;
        if status == KeyStatus::Active && bundle.is_none() {
            return Err(Error::Missing("bundle"));
        }
        Ok(Self { jid, status, bundle, proof: proofs::item_proof(item)? })
    }

    fn to_element(&self) -> Element {
        let mut item = Element::new("item", NS).attr("jid", self.jid.as_str());
        item = match &self.status {
            KeyStatus::Active => item.attr("status", "active"),
            KeyStatus::None => item.attr("status", "none"),
            KeyStatus::Revoked { at, reason } => {
                item.attr("status", "revoked").attr("revoked-at", format_time(at)).attr("reason", reason.as_str())
            }
        };
        if let Some(bundle) = &self.bundle {
            item = item.child(bundle.to_element());
        }
        match &self.proof {
            Some(proof) => item.child(proofs::proof_element(proof)),
            None => item,
        }
    }
}

/// An answer listing accounts and their keys: `<keys>` or `<roster-keys>`.
macro_rules! key_list {
    ($(#[$doc:meta])* $name:ident, $tag:literal, $limit:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            /// One entry per account.
            pub items: Vec<KeyItem>,
            /// The signed head the items' proofs are for, with its log proofs (when asked for).
            pub transparency: Option<HeadProofs>,
        }

        impl XmlElement for $name {
            fn from_element(element: &Element) -> Result<Self> {
                expect(element, $tag, NS, concat!("{urn:keyward:0}", $tag))?;
                let items: Vec<&Element> = element.children().iter().filter(|c| c.is("item", NS)).collect();
                if items.len() > $limit {
                    return Err(Error::TooLarge { what: concat!($tag, " items"), limit: $limit });
                }
                let transparency = element.get_child("transparency", NS).map(HeadProofs::from_element).transpose()?;
                Ok(Self { items: items.into_iter().map(KeyItem::from_element).collect::<Result<_>>()?, transparency })
            }

            fn to_element(&self) -> Element {
                let list = match &self.transparency {
                    Some(head) => Element::new($tag, NS).child(head.to_element()),
                    None => Element::new($tag, NS),
                };
                self.items.iter().fold(list, |e, item| e.child(item.to_element()))
            }
        }
    };
}

key_list!(
    /// `<keys>` in an IQ result: the answer to a [`KeysQuery`].
    KeysResult,
    "keys",
    limits::KEYS_ITEMS
);
key_list!(
    /// `<roster-keys>` in an IQ result: the sender's roster with each contact's keys.
    RosterKeys,
    "roster-keys",
    limits::ROSTER_ITEMS
);

/// `<relay to='...'/>` in an IQ set: hand my bundle to `to` and record that it holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// Who receives the sender's bundle.
    pub to: BareJid,
}

impl XmlElement for Relay {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "relay", NS, "{urn:keyward:0}relay")?;
        Ok(Self { to: BareJid::parse(attr(element, "to")?)? })
    }

    fn to_element(&self) -> Element {
        Element::new("relay", NS).attr("to", self.to.as_str())
    }
}

/// `<key-relay from='...'>` in a message from the component: `from`'s bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRelay {
    /// Whose bundle this is (the receiving client verifies the bundle is for this JID).
    pub from: BareJid,
    /// The bundle.
    pub bundle: Bundle,
}

impl XmlElement for KeyRelay {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "key-relay", NS, "{urn:keyward:0}key-relay")?;
        Ok(Self {
            from: BareJid::parse(attr(element, "from")?)?,
            bundle: Bundle::from_element(one_child(element, "bundle")?)?,
        })
    }

    fn to_element(&self) -> Element {
        Element::new("key-relay", NS).attr("from", self.from.as_str()).child(self.bundle.to_element())
    }
}

/// `<revoked/>` in a message from the component: an account was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked account.
    pub jid: BareJid,
    /// The fingerprint of its revoked key.
    pub fp: Fingerprint,
    /// When it was revoked.
    pub at: OffsetDateTime,
    /// The admin's reason.
    pub reason: String,
}

impl XmlElement for Revoked {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "revoked", NS, "{urn:keyward:0}revoked")?;
        let reason = element.get_attr("reason").unwrap_or_default().to_owned();
        check_reason(&reason)?;
        Ok(Self {
            jid: BareJid::parse(attr(element, "jid")?)?,
            fp: Fingerprint::from_hex(attr(element, "fp")?)?,
            at: parse_time(attr(element, "at")?, "at")?,
            reason,
        })
    }

    fn to_element(&self) -> Element {
        Element::new("revoked", NS)
            .attr("jid", self.jid.as_str())
            .attr("fp", self.fp.to_hex())
            .attr("at", format_time(&self.at))
            .attr("reason", self.reason.as_str())
    }
}

/// The text of an element with no children: the base64 of a fixed-size field.
fn fixed_text<const N: usize>(element: &Element, field: &'static str) -> Result<[u8; N]> {
    if !element.children().is_empty() {
        return Err(Error::InvalidValue(field));
    }
    unb64_fixed(element.get_text(), field)
}

/// The `challenge` attribute: 32 bytes in base64.
fn challenge(element: &Element) -> Result<RestoreChallenge> {
    Ok(RestoreChallenge::from_bytes(&unb64_fixed(attr(element, "challenge")?, "challenge")?))
}

/// `<oprf>` in an IQ get: the client's blinded passphrase, for keydir to evaluate with the
/// sender's OPRF key (protocol section 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OprfQuery {
    /// The blinded element (a ristretto255 element other than the identity).
    pub blinded: BlindedElement,
}

impl XmlElement for OprfQuery {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "oprf", NS, "{urn:keyward:0}oprf")?;
        Ok(Self { blinded: BlindedElement::from_bytes(&fixed_text(element, "oprf")?)? })
    }

    fn to_element(&self) -> Element {
        Element::new("oprf", NS).text(b64(&self.blinded.to_bytes()))
    }
}

/// `<oprf-result challenge='...'>` in an IQ result: keydir's evaluation, and the challenge the
/// client signs once the blob opened ([`RestoreProof`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OprfResult {
    /// Fresh for this evaluation; keydir counts it as a failed guess until it is answered.
    pub challenge: RestoreChallenge,
    /// The evaluated element.
    pub evaluated: EvaluatedElement,
    /// How many more unproven evaluations keydir answers before it locks the account (this one
    /// counted), as keydir reports it: for telling the user, never for a decision (the server
    /// side can say anything here).
    pub left: Option<u32>,
}

impl XmlElement for OprfResult {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "oprf-result", NS, "{urn:keyward:0}oprf-result")?;
        let left = match element.get_attr("left") {
            None => None,
            Some(_) => Some(number(element, "left")?),
        };
        Ok(Self {
            challenge: challenge(element)?,
            evaluated: EvaluatedElement::from_bytes(&fixed_text(element, "oprf-result")?)?,
            left,
        })
    }

    fn to_element(&self) -> Element {
        let element = Element::new("oprf-result", NS).attr("challenge", b64(&self.challenge.to_bytes()));
        let element = match self.left {
            Some(left) => element.attr("left", left.to_string()),
            None => element,
        };
        element.text(b64(&self.evaluated.to_bytes()))
    }
}

/// `<restore-proof challenge='...'>` in an IQ set: the identity key's signature over keydir's
/// challenge, showing that the guess behind it was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProof {
    /// The challenge of the [`OprfResult`] this answers.
    pub challenge: RestoreChallenge,
    /// The signature over [`crate::restore::proof_message`].
    pub sig: [u8; 64],
}

impl RestoreProof {
    /// The proof for `challenge`, signed as account `jid` with the restored `keys`.
    pub fn sign(keys: &KeyPair, jid: &BareJid, challenge: RestoreChallenge) -> Self {
        Self { challenge, sig: sign_proof(keys, jid, &challenge) }
    }

    /// keydir: checks the proof with the identity key of `jid`'s stored bundle
    /// ([`Error::BadSignature`] otherwise). keydir also checks that `challenge` is one it
    /// issued to `jid` and has not seen answered.
    pub fn verify(&self, ik: &IdentityPublic, jid: &BareJid) -> Result<()> {
        verify_proof(ik, jid, &self.challenge, &self.sig)
    }
}

impl XmlElement for RestoreProof {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "restore-proof", NS, "{urn:keyward:0}restore-proof")?;
        Ok(Self { challenge: challenge(element)?, sig: fixed_text(element, "restore-proof")? })
    }

    fn to_element(&self) -> Element {
        Element::new("restore-proof", NS).attr("challenge", b64(&self.challenge.to_bytes())).text(b64(&self.sig))
    }
}

/// XEP-0380 `<encryption namespace='urn:keyward:0' name='keyward'/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Eme;

impl XmlElement for Eme {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "encryption", NS_EME, "{urn:xmpp:eme:0}encryption")?;
        if attr(element, "namespace")? != NS {
            return Err(Error::InvalidValue("namespace"));
        }
        Ok(Self)
    }

    fn to_element(&self) -> Element {
        Element::new("encryption", NS_EME).attr("namespace", NS).attr("name", "keyward")
    }
}

/// XEP-0334 `<store/>`: ask the server to keep the message for offline delivery and archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreHint;

impl XmlElement for StoreHint {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "store", NS_HINTS, "{urn:xmpp:hints}store")?;
        Ok(Self)
    }

    fn to_element(&self) -> Element {
        Element::new("store", NS_HINTS)
    }
}

mod proofs;
pub use proofs::{Consistency, HeadProofs, HistoryAnswer, HistoryQuery, KEYS_PROOF_ITEMS};

#[cfg(test)]
mod tests;
