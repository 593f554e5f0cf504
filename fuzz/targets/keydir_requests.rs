//! Fuzz target: keydir's JSON request bodies, decoded as the API decodes them (a JSON
//! object, unknown fields refused), then the checks the handlers apply to their fields.
//! Nothing may panic, and every JID the API accepts must be stable in its normal form.
#![no_main]

use keyward_keydir::api::admin::RevokeRequest;
use keyward_keydir::api::component::{ClaimRequest, LookupRequest, NoticeIds, PublishRequest, RelayRequest};
use keyward_keydir::api::extract::{MAX_JID_CHARS, json_object, parse_jid};
use keyward_proto::{Bundle, SecretBlob, SecretSig, XmlElement};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn jid(text: &str) {
    if let Ok(jid) = parse_jid(text, "fuzz") {
        assert!(text.chars().count() <= MAX_JID_CHARS);
        let again = parse_jid(jid.as_str(), "fuzz").expect("an accepted JID's normal form is accepted");
        assert_eq!(again, jid);
    }
}

fuzz_target!(|data: &[u8]| {
    // What `axum::Json` does before the API's own decoding.
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(body) = json_object::<PublishRequest>(value.clone()) {
        let bundle = Bundle::parse(body.bundle.as_bytes()).ok().and_then(|bundle| bundle.verify().ok());
        let secret = SecretBlob::parse(body.secret.as_bytes());
        let update = SecretSig::parse(body.secret_sig.as_bytes());
        if let (Some(bundle), Ok(secret), Ok(update)) = (bundle, secret, update) {
            let _ = update.verify(bundle.identity_key(), bundle.jid(), &secret);
        }
    }
    if let Ok(body) = json_object::<LookupRequest>(value.clone()) {
        body.requester.as_deref().into_iter().chain(body.jids.iter().map(String::as_str)).for_each(jid);
    }
    if let Ok(body) = json_object::<RelayRequest>(value.clone()) {
        jid(&body.from);
        jid(&body.to);
    }
    let _ = json_object::<ClaimRequest>(value.clone());
    let _ = json_object::<NoticeIds>(value.clone());
    let _ = json_object::<RevokeRequest>(value.clone());
    if let Value::String(text) = &value {
        jid(text);
    }
});
