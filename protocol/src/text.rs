//! Text a peer sent, shown back in error replies and logs without letting its size or its bytes
//! through: [`Shown`] quotes and escapes a name and cuts it after [`SHOWN_BYTES_MAX`] bytes, and
//! [`bounded`] cuts a whole message to [`ERROR_MESSAGE_BYTES_MAX`]. A peer can make a request
//! carry up to `META_BYTES_MAX` of name; none of it may make a reply larger than the limits or
//! put control characters into a log line.

use std::fmt;

/// How much of a peer-supplied string an error text or log line repeats.
pub const SHOWN_BYTES_MAX: usize = 64;

/// Largest error message a reply carries (any protocol).
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;

/// Displays a peer-supplied string quoted and escaped like `{:?}`, cut after
/// [`SHOWN_BYTES_MAX`] bytes of the original with the total length noted.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let cut = floor_char_boundary(text, SHOWN_BYTES_MAX);
        write!(f, "\"{}\"", text[..cut].escape_debug())?;
        if cut < text.len() {
            write!(f, "…({} bytes)", text.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `message` cut to at most [`ERROR_MESSAGE_BYTES_MAX`] bytes on a character boundary.
pub fn bounded(mut message: String) -> String {
    if message.len() > ERROR_MESSAGE_BYTES_MAX {
        const MARK: &str = "…";
        let cut = floor_char_boundary(&message, ERROR_MESSAGE_BYTES_MAX - MARK.len());
        message.truncate(cut);
        message.push_str(MARK);
    }
    message
}

/// The largest index `<= at` that is a char boundary of `text` (`str::floor_char_boundary` is not
/// stable yet).
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_quoted_whole() {
        assert_eq!(Shown("orders").to_string(), "\"orders\"");
        assert_eq!(Shown("a\u{1}b").to_string(), "\"a\\u{1}b\"");
    }

    #[test]
    fn long_names_are_cut_and_measured() {
        let name = "é".repeat(100_000);
        let shown = Shown(&name).to_string();
        assert!(shown.len() <= SHOWN_BYTES_MAX + 24, "{} bytes", shown.len());
        assert!(shown.ends_with("…(200000 bytes)"), "{shown}");
        let controls = "\u{7}".repeat(300_000);
        assert!(Shown(&controls).to_string().len() < 64 * 8 + 40);
    }

    #[test]
    fn messages_are_bounded_on_a_char_boundary() {
        let long = "ü".repeat(ERROR_MESSAGE_BYTES_MAX);
        let cut = bounded(long);
        assert!(cut.len() <= ERROR_MESSAGE_BYTES_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short".into()), "short");
    }
}
