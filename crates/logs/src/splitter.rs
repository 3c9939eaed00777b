//! Turns a dyno's raw stdout/stderr bytes into log lines.

/// Splits a byte stream into lines of at most `max_line_bytes` bytes of UTF-8.
///
/// Invalid UTF-8 is replaced with U+FFFD (also across `feed` boundaries), a trailing
/// `\r` is removed, and a line longer than the limit is emitted in chunks as it
/// arrives, so a 10 MB line never sits in memory.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    /// Decoded text not yet emitted (no `\n` in it, at most `max` bytes between feeds).
    text: String,
    /// An incomplete UTF-8 sequence at the end of the last feed (at most 3 bytes).
    pending: Vec<u8>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(10_000)
    }
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            // A chunk must hold at least one char (up to 4 bytes) to make progress.
            max: max_line_bytes.max(4),
            text: String::new(),
            pending: Vec::new(),
        }
    }

    /// Adds bytes and returns the lines they complete.
    pub fn feed(&mut self, data: &[u8]) -> Vec<String> {
        if self.pending.is_empty() {
            self.decode(data);
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(data);
            self.decode(&joined);
        }
        let mut out = Vec::new();
        let bytes = self.text.as_bytes();
        let mut start = 0;
        loop {
            let rest = &bytes[start..];
            let window = &rest[..rest.len().min(self.max + 1)];
            if let Some(nl) = window.iter().position(|&b| b == b'\n') {
                let mut line = &self.text[start..start + nl];
                if let Some(stripped) = line.strip_suffix('\r') {
                    line = stripped;
                }
                out.push(line.to_owned());
                start += nl + 1;
            } else if rest.len() > self.max {
                let mut cut = start + self.max;
                while !self.text.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push(self.text[start..cut].to_owned());
                start = cut;
            } else {
                break;
            }
        }
        self.text.drain(..start);
        out
    }

    /// Flushes a last line that had no newline. An incomplete UTF-8 sequence becomes
    /// U+FFFD; the result is at most `max_line_bytes` (the rare excess from that
    /// replacement is cut).
    pub fn finish(&mut self) -> Option<String> {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.text.push(char::REPLACEMENT_CHARACTER);
        }
        if self.text.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.text);
        if line.ends_with('\r') {
            line.pop();
        }
        crate::truncate_at_boundary(&mut line, self.max);
        Some(line)
    }

    fn decode(&mut self, mut data: &[u8]) {
        loop {
            match std::str::from_utf8(data) {
                Ok(s) => {
                    self.text.push_str(s);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe split: from_utf8 just validated data[..valid].
                    self.text
                        .push_str(std::str::from_utf8(&data[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            data = &data[valid + bad..];
                        }
                        None => {
                            // Incomplete sequence at the end: wait for more bytes.
                            self.pending.extend_from_slice(&data[valid..]);
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partial() {
        let mut s = LineSplitter::new(100);
        assert_eq!(s.feed(b"one\ntw"), vec!["one"]);
        assert_eq!(s.feed(b"o\r\n\nthree"), vec!["two", ""]);
        assert_eq!(s.feed(b""), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("three"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn invalid_utf8_is_replaced_even_across_feeds() {
        let mut s = LineSplitter::new(100);
        assert_eq!(s.feed(b"a\xffb\n"), vec!["a\u{fffd}b"]);
        // "é" is C3 A9, split across two feeds.
        assert_eq!(s.feed(b"caf\xc3"), Vec::<String>::new());
        assert_eq!(s.feed(b"\xa9\n"), vec!["café"]);
        // A truncated sequence at the very end.
        assert_eq!(s.feed(b"x\xe2\x82"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("x\u{fffd}"));
    }

    #[test]
    fn ten_megabyte_line_is_split_into_bounded_chunks() {
        let max = 10_000;
        let mut s = LineSplitter::new(max);
        let total = 10 * 1024 * 1024;
        // Multi-byte chars so chunk cuts must respect char boundaries.
        let unit = "aé€"; // 1 + 2 + 3 bytes
        let big = unit.repeat(total / unit.len());
        let mut lines = Vec::new();
        for part in big.as_bytes().chunks(64 * 1024 + 3) {
            lines.extend(s.feed(part));
            assert!(s.text.len() <= max, "buffer grew to {}", s.text.len());
        }
        lines.extend(s.feed(b"\nafter\n"));
        assert_eq!(lines.last().map(String::as_str), Some("after"));
        lines.pop();
        assert!(lines.len() >= total / max);
        assert!(lines.iter().all(|l| l.len() <= max && !l.is_empty()));
        assert_eq!(lines.concat(), big);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn line_of_exactly_max_bytes_stays_whole() {
        let mut s = LineSplitter::new(8);
        assert_eq!(s.feed(b"12345678"), Vec::<String>::new());
        assert_eq!(s.feed(b"\n"), vec!["12345678"]);
        assert_eq!(s.feed(b"123456789\n"), vec!["12345678", "9"]);
    }

    #[test]
    fn invalid_bytes_never_exceed_limit() {
        let mut s = LineSplitter::new(10);
        let lines = s.feed(&[0xff; 40]);
        let rest = s.finish();
        let all: Vec<String> = lines.into_iter().chain(rest).collect();
        assert!(all.iter().all(|l| l.len() <= 10), "{all:?}");
        assert_eq!(all.concat(), "\u{fffd}".repeat(40));
    }
}
