//! Fuzzes the component's stream decoder: arbitrary bytes, split at arbitrary points.
//!
//! The first byte picks the read size, so the same input is also tried one byte at
//! a time and in odd chunks. The decoder must never panic, must stay within its
//! memory bound, and must yield the same frames whatever the split.

#![no_main]

use keyward_component::stream::{Decoder, DecoderLimits, Frame};
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                        xmlns='jabber:component:accept' id='fuzz'>";
const LIMITS: DecoderLimits = DecoderLimits { max_stanza: 4096, max_header: 512 };

fn decode(input: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let mut decoder = Decoder::new(LIMITS);
    let mut frames = Vec::new();
    let mut failed = false;
    for piece in HEADER.iter().copied().chain(input.iter().copied()).collect::<Vec<_>>().chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(decoder.buffered() <= LIMITS.max_stanza + LIMITS.max_header + chunk);
        if failed {
            break;
        }
    }
    (frames, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let whole = decode(rest, usize::MAX.min(rest.len() + HEADER.len()).max(1));
    let split = decode(rest, chunk);
    assert_eq!(whole, split, "frames depend on read boundaries");
});
