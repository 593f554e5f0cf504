//! Text from peers and servers made safe for a terminal: no control, bidi or invisible format character reaches it, and no line of a message can pass for another message (protocol section 12.3).

use std::fmt::Write;

/// The prefix of every continuation line of a multi-line body: no message header starts with it.
pub const CONTINUATION: &str = "  | ";

/// Whether `c` must never reach a terminal raw: C0 controls, DEL, C1 controls, line and
/// paragraph separators, bidi embeddings, overrides, isolates and marks, and the invisible
/// format characters (Unicode category Cf) that can hide or reorder text.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'     // C0, DEL, C1
        | '\u{ad}'                                   // soft hyphen
        | '\u{34f}'                                  // combining grapheme joiner
        | '\u{61c}'                                  // Arabic letter mark
        | '\u{600}'..='\u{605}' | '\u{6dd}' | '\u{70f}' | '\u{890}'..='\u{891}' | '\u{8e2}'
        | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'                    // zero widths, LRM, RLM
        | '\u{2028}' | '\u{2029}'                    // line and paragraph separators
        | '\u{202a}'..='\u{202e}'                    // embeddings and overrides
        | '\u{2060}'..='\u{206f}'                    // word joiner, invisible operators, isolates
        | '\u{3164}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'                    // interlinear annotations
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}'                  // tags and variation selectors supplement
    )
}

/// `text` on one line with every unsafe character written as an escape: `\n`, `\r`, `\t`, or
/// `\u{XXXX}`; a backslash is doubled, so an escape in the text cannot pass for one of ours.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A message body for text output: each line escaped, lines after the first on lines of their
/// own that start with [`CONTINUATION`]. A line ends at `\n` (a `\r` just before it goes too);
/// any other `\r` is escaped.
pub fn body(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(CONTINUATION);
        }
        out.push_str(&escape(line.strip_suffix('\r').unwrap_or(line)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_bidi_and_invisible_character() {
        let cases: &[(&str, &str)] = &[
            ("plain text, ünïcödé, 日本語, emoji 🎉", "plain text, ünïcödé, 日本語, emoji 🎉"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("\u{1b}[2J\u{1b}]0;title\u{7}", "\\u{001b}[2J\\u{001b}]0;title\\u{0007}"),
            ("\u{0}\u{7f}\u{80}\u{85}\u{9b}\u{9f}", "\\u{0000}\\u{007f}\\u{0080}\\u{0085}\\u{009b}\\u{009f}"),
            ("\u{202e}evil\u{202c}", "\\u{202e}evil\\u{202c}"),
            ("\u{2066}\u{2067}\u{2068}\u{2069}", "\\u{2066}\\u{2067}\\u{2068}\\u{2069}"),
            ("\u{200e}\u{200f}\u{61c}\u{200b}\u{feff}", "\\u{200e}\\u{200f}\\u{061c}\\u{200b}\\u{feff}"),
            ("line\u{2028}sep\u{2029}", "line\\u{2028}sep\\u{2029}"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("back\\slash \\u{202e}", "back\\\\slash \\\\u{202e}"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn every_c0_c1_and_listed_format_character_is_unsafe() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(is_unsafe(c), "{c:?}");
            assert!(!escape(&c.to_string()).chars().any(is_unsafe));
        }
        for c in [0x61c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2069, 0x2028, 0x2029] {
            assert!(is_unsafe(char::from_u32(c).expect("char")), "{c:x}");
        }
        for c in ['a', ' ', 'é', '\u{a0}', '\u{5d0}', '\u{627}', '日'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn no_line_of_a_body_can_pass_for_a_message_header() {
        let forged = "hi\nalice@example.test [verified, verified signature]: send money\r\nbye\r\n";
        let shown = body(forged);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            ["hi", "  | alice@example.test [verified, verified signature]: send money", "  | bye", "  | ",]
        );
        assert!(lines.iter().skip(1).all(|l| l.starts_with(CONTINUATION)));
        assert_eq!(body("one line"), "one line");
        assert_eq!(body("a\rb"), "a\\rb");
        assert!(!body("x\u{2028}y\u{85}z\u{b}w\u{c}v").contains(['\u{2028}', '\u{85}', '\u{b}', '\u{c}']));
    }
}
