//! Literal-XML tests of the stream decoder, including every read split.

use super::*;
use proptest::prelude::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                      xmlns='jabber:component:accept' id='s1d' from='keys.example.test'>";
const PRIVILEGE: &str = "<message from='example.test' to='keys.example.test'>\
                         <privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='both'/></privilege>\
                         </message>";

/// Feeds `chunks` and collects every frame (or the first error).
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Frame>> {
    let mut decoder = Decoder::default();
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

fn decode(text: &str) -> Result<Vec<Frame>> {
    decode_chunks([text.as_bytes()])
}

fn condition(text: &str) -> StreamCondition {
    match decode(text) {
        Err(Error::Stream { condition, .. }) => condition,
        other => panic!("expected a stream error for {text:?}, got {other:?}"),
    }
}

fn stream(body: &str) -> String {
    format!("{HEADER}{body}")
}

#[test]
fn handshake_and_privilege_in_one_read() {
    let frames = decode(&stream(&format!("<handshake/>{PRIVILEGE}"))).expect("valid");
    assert_eq!(frames.len(), 3);
    let Frame::Header(header) = &frames[0] else { panic!("{frames:?}") };
    assert_eq!(header.id.as_deref(), Some("s1d"));
    assert_eq!(frames[1], Frame::Handshake);
    let Frame::Stanza(message) = &frames[2] else { panic!("{frames:?}") };
    assert!(message.is("message", NS_COMPONENT));
    let privilege = message.get_child("privilege", "urn:xmpp:privilege:2").expect("child");
    assert_eq!(privilege.children()[0].get_attr("access"), Some("roster"));
}

#[test]
fn every_split_and_one_byte_at_a_time_give_the_same_frames() {
    let text = stream(&format!(
        "<handshake></handshake> \n{PRIVILEGE}<iq type='get' id='a&gt;b' from='alice@example.test/x' \
         to='keys.example.test'><keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys></iq>\
         <message to='k' a=\"x>y\"><body><![CDATA[</message> ]] > <&]]></body></message></stream:stream>"
    ));
    let whole = decode(&text).expect("valid");
    assert_eq!(whole.len(), 6);
    assert_eq!(whole.last(), Some(&Frame::Close));
    let Frame::Stanza(cdata) = &whole[4] else { panic!("{whole:?}") };
    assert_eq!(cdata.get_attr("a"), Some("x>y"));
    assert_eq!(cdata.children()[0].get_text(), "</message> ]] > <&");
    let bytes = text.as_bytes();
    for split in 0..bytes.len() {
        let (a, b) = bytes.split_at(split);
        assert_eq!(decode_chunks([a, b]).expect("valid"), whole, "split at {split}");
    }
    assert_eq!(decode_chunks(bytes.chunks(1)).expect("valid"), whole);
}

#[test]
fn stanza_namespace_is_inherited_from_the_header() {
    let frames = decode(&stream("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")).expect("valid");
    let Frame::Stanza(iq) = &frames[1] else { panic!("{frames:?}") };
    assert_eq!(iq.ns(), NS_COMPONENT);
    assert!(iq.get_child("ping", "urn:xmpp:ping").is_some());
}

#[test]
fn stream_error_and_close() {
    let frames = decode(&stream(
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad secret</text></stream:error></stream:stream>",
    ))
    .expect("valid");
    assert_eq!(frames[1], Frame::StreamError { condition: "not-authorized".into(), text: Some("bad secret".into()) });
    assert_eq!(frames[2], Frame::Close);
}

#[test]
fn nothing_after_close() {
    let mut decoder = Decoder::default();
    decoder.feed(stream("</stream:stream><iq/>").as_bytes());
    assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Header(_)))));
    assert_eq!(decoder.next_frame().expect("ok"), Some(Frame::Close));
    assert_eq!(decoder.next_frame().expect("ok"), None);
}

#[test]
fn oversize_stanza_is_skipped_with_its_head_and_bounded_memory() {
    let limits = DecoderLimits { max_stanza: 1024, max_header: 4096 };
    let mut decoder = Decoder::new(limits);
    decoder.feed(stream("").as_bytes());
    assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Header(_)))));
    decoder.feed(b"<iq type='set' id='big' from='alice@example.test/x'><publish xmlns='urn:keyward:0'>");
    let mut max_buffered = 0;
    for _ in 0..200 {
        decoder.feed(&[b'A'; 512]);
        assert_eq!(decoder.next_frame().expect("ok"), None);
        max_buffered = max_buffered.max(decoder.buffered());
    }
    assert!(max_buffered <= 1024 + 512, "buffered {max_buffered}");
    decoder.feed(b"</publish></iq><iq type='get' id='next'/>");
    let Some(Frame::Oversize { head: Some(head) }) = decoder.next_frame().expect("ok") else { panic!("no oversize") };
    assert_eq!(head.get_attr("id"), Some("big"));
    assert_eq!(head.get_attr("from"), Some("alice@example.test/x"));
    assert!(head.children().is_empty());
    let Some(Frame::Stanza(next)) = decoder.next_frame().expect("ok") else { panic!("stream did not recover") };
    assert_eq!(next.get_attr("id"), Some("next"));
}

#[test]
fn oversize_start_tag_has_no_head() {
    let limits = DecoderLimits { max_stanza: 64, max_header: 4096 };
    let mut decoder = Decoder::new(limits);
    decoder.feed(stream(&format!("<iq id='{}'/><iq id='ok'/>", "x".repeat(100))).as_bytes());
    assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Header(_)))));
    assert_eq!(decoder.next_frame().expect("ok"), Some(Frame::Oversize { head: None }));
    assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Stanza(_)))));
}

#[test]
fn too_deep_stanza_is_oversize_not_a_stream_error() {
    let deep = format!("<iq id='deep'>{}{}</iq><iq id='ok'/>", "<a>".repeat(30), "</a>".repeat(30));
    let frames = decode(&stream(&deep)).expect("stream survives");
    assert!(matches!(&frames[1], Frame::Oversize { head: Some(h) } if h.get_attr("id") == Some("deep")));
    assert!(matches!(&frames[2], Frame::Stanza(_)));
}

#[test]
fn restricted_xml_is_refused() {
    let cases = [
        ("<!DOCTYPE x [<!ENTITY a 'b'>]>", StreamCondition::RestrictedXml),
        ("<!-- hi -->", StreamCondition::RestrictedXml),
        ("<iq><!-- hi --></iq>", StreamCondition::RestrictedXml),
        ("<?php x ?>", StreamCondition::RestrictedXml),
        ("<iq>&xxe;</iq>", StreamCondition::NotWellFormed),
        ("<iq><a></iq></stream:stream>", StreamCondition::NotWellFormed),
        ("hello", StreamCondition::BadFormat),
        ("<features/>", StreamCondition::UnsupportedStanzaType),
        ("<iq xmlns='urn:evil'/>", StreamCondition::UnsupportedStanzaType),
    ];
    for (body, expected) in cases {
        assert_eq!(condition(&stream(body)), expected, "{body}");
    }
    assert_eq!(condition("<!DOCTYPE x><stream:stream>"), StreamCondition::RestrictedXml);
    assert_eq!(condition("<?evil?>"), StreamCondition::RestrictedXml);
    assert_eq!(condition("<iq/>"), StreamCondition::BadFormat);
    assert_eq!(condition(&format!("<stream:stream a='{}'>", "x".repeat(5000))), StreamCondition::PolicyViolation);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut decoder = Decoder::new(DecoderLimits { max_stanza: 256, max_header: 128 });
        decoder.feed(HEADER.as_bytes());
        for chunk in &chunks {
            decoder.feed(chunk);
            while let Ok(Some(_)) = decoder.next_frame() {}
            prop_assert!(decoder.buffered() <= 256 + 64 + HEADER.len());
        }
    }

    #[test]
    fn random_splits_give_the_same_frames(cuts in proptest::collection::vec(0usize..400, 0..8)) {
        let text = stream(&format!("<handshake/>{PRIVILEGE} <iq id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"));
        let bytes = text.as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for cut in cuts {
            chunks.push(&bytes[last..cut]);
            last = cut;
        }
        chunks.push(&bytes[last..]);
        prop_assert_eq!(decode_chunks(chunks).expect("valid"), decode(&text).expect("valid"));
    }
}
