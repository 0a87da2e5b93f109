//! Secret keys. A key never leaves this type in readable form except as the bytes
//! fed to a hash: `Debug` is redacted and masking is explicit.

use std::fmt;
use thiserror::Error;

/// Longest key accepted, as at the providers.
pub const MAX_KEY_LEN: usize = 100;
/// Most keys a rule may hold (primary, backup, …).
pub const MAX_KEYS: usize = 100;

/// Why a key string was refused. The messages never repeat the key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is {0} characters long; at most {MAX_KEY_LEN} are allowed")]
    TooLong(usize),
    #[error("character {0} of the key is not one of A-Z, a-z, 0-9")]
    BadChar(usize),
}

/// One secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Box<str>);

impl Key {
    /// Accepts 1–100 characters of `[A-Za-z0-9]`, the alphabet every provider uses, so
    /// keys survive YAML, shells and consoles unchanged.
    pub fn new(s: &str) -> Result<Key, KeyError> {
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(s.chars().count()));
        }
        if let Some(i) = s.bytes().position(|b| !b.is_ascii_alphanumeric()) {
            return Err(KeyError::BadChar(i + 1));
        }
        Ok(Key(s.into()))
    }

    /// The bytes that go into a hash.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// `fi*****11`: the first and last two characters (one each for keys shorter
    /// than 8), as the providers' consoles show keys — enough for an operator to
    /// tell keys apart, too little to guess one.
    pub fn masked(&self) -> String {
        let k = &*self.0;
        let shown = match k.len() {
            0..=2 => return format!("{}*****", &k[..k.len().min(1)]),
            3..=7 => 1,
            _ => 2,
        };
        format!("{}*****{}", &k[..shown], &k[k.len() - shown..])
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_says_why() {
        assert_eq!(Key::new(""), Err(KeyError::Empty));
        assert_eq!(Key::new(&"a".repeat(101)), Err(KeyError::TooLong(101)));
        assert_eq!(Key::new("abc-def"), Err(KeyError::BadChar(4)));
        assert!(Key::new(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn never_prints_itself() {
        let k = Key::new("topsecret123").unwrap();
        assert!(!format!("{k:?}").contains("topsecret"));
        assert_eq!(k.masked(), "to*****23");
        assert_eq!(Key::new("live").unwrap().masked(), "l*****e");
        assert!(!KeyError::BadChar(3).to_string().contains("topsecret"));
    }
}
