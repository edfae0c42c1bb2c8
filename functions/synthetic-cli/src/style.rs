//! Colors for terminals only: never when the stream is a pipe or a file, never with `NO_COLOR`
//! set to anything but the empty string (<https://no-color.org>).

use std::io::IsTerminal;
use synthetic_checks::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Dim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    pub fn stdout() -> Style {
        Style::detect(std::io::stdout().is_terminal())
    }

    pub fn stderr() -> Style {
        Style::detect(std::io::stderr().is_terminal())
    }

    fn detect(terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { color: terminal && !no_color }
    }

    /// `text` in the tone's color; pad before painting so columns still line up.
    pub fn paint(self, text: &str, tone: Tone) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "1;31",
            Tone::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

pub fn outcome_tone(outcome: Outcome) -> Tone {
    match outcome {
        Outcome::Passed => Tone::Good,
        Outcome::Degraded => Tone::Warn,
        Outcome::Failed => Tone::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_style_adds_no_escape_codes() {
        assert_eq!(Style::PLAIN.paint("failed", Tone::Bad), "failed");
        assert_eq!(Style { color: true }.paint("ok", Tone::Good), "\x1b[32mok\x1b[0m");
        assert!(!Style::detect(false).color);
    }
}
