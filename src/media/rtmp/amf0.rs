//! AMF0, the encoding of RTMP commands (`connect`, `publish`, `onStatus` …):
//! the handful of value types encoders and origins really send, decoded with a
//! depth bound, so a hostile message can neither recurse nor allocate past its
//! own length.

use thiserror::Error;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
    String(String),
    /// An anonymous object: key/value pairs in order.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// An associative array (written like an object, with a count first).
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the epoch (the time zone is ignored, as the spec says).
    Date(f64),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or associative array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => {
                p.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Sets (or adds) a property of an object or associative array.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Object(p) | Value::EcmaArray(p) = self {
            match p.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => p.push((key.to_owned(), value)),
            }
        }
    }

    /// An object from pairs, for the replies livegate writes.
    pub fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// Why AMF0 did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmfError {
    #[error("AMF0 ends inside a value")]
    Truncated,
    #[error("AMF0 type marker {0} is not supported")]
    Marker(u8),
    #[error("AMF0 nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("an AMF0 string is not UTF-8")]
    NotUtf8,
}

/// How deep objects may nest (real commands nest two levels).
const MAX_DEPTH: usize = 16;

/// Decodes every value of a command message body.
pub fn decode_all(mut b: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(decode(&mut b, 0)?);
    }
    Ok(out)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if b.len() < n {
        return Err(AmfError::Truncated);
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn u16_be(b: &mut &[u8]) -> Result<usize, AmfError> {
    let s = take(b, 2)?;
    Ok(u16::from_be_bytes([s[0], s[1]]) as usize)
}

fn u32_be(b: &mut &[u8]) -> Result<usize, AmfError> {
    let s = take(b, 4)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

fn f64_be(b: &mut &[u8]) -> Result<f64, AmfError> {
    let s = take(b, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(f64::from_be_bytes(a))
}

fn utf8(s: &[u8]) -> Result<String, AmfError> {
    String::from_utf8(s.to_vec()).map_err(|_| AmfError::NotUtf8)
}

fn short_string(b: &mut &[u8]) -> Result<String, AmfError> {
    let n = u16_be(b)?;
    utf8(take(b, n)?)
}

/// Key/value pairs up to the object end marker (`00 00 09`).
fn properties(b: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, AmfError> {
    let mut out = Vec::new();
    loop {
        let key = short_string(b)?;
        if key.is_empty() && b.first() == Some(&9) {
            *b = &b[1..];
            return Ok(out);
        }
        let value = decode(b, depth + 1)?;
        out.push((key, value));
    }
}

fn decode(b: &mut &[u8], depth: usize) -> Result<Value, AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::TooDeep);
    }
    let marker = take(b, 1)?[0];
    Ok(match marker {
        0 => Value::Number(f64_be(b)?),
        1 => Value::Bool(take(b, 1)?[0] != 0),
        2 => Value::String(short_string(b)?),
        3 => Value::Object(properties(b, depth)?),
        5 => Value::Null,
        6 => Value::Undefined,
        8 => {
            // The count is advisory (encoders get it wrong): read to the end marker.
            take(b, 4)?;
            Value::EcmaArray(properties(b, depth)?)
        }
        10 => {
            let n = u32_be(b)?;
            // Each value is at least one byte: a count past the rest is a lie.
            if n > b.len() {
                return Err(AmfError::Truncated);
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode(b, depth + 1)?);
            }
            Value::StrictArray(items)
        }
        11 => {
            let ms = f64_be(b)?;
            take(b, 2)?;
            Value::Date(ms)
        }
        12 => {
            let n = u32_be(b)?;
            Value::String(utf8(take(b, n)?)?)
        }
        other => return Err(AmfError::Marker(other)),
    })
}

/// Appends a value's encoding.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Number(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::String(s) if s.len() > u16::MAX as usize => {
            out.push(12);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::String(s) => {
            out.push(2);
            key(s, out);
        }
        Value::Object(p) => {
            out.push(3);
            pairs(p, out);
        }
        Value::Null => out.push(5),
        Value::Undefined => out.push(6),
        Value::EcmaArray(p) => {
            out.push(8);
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            pairs(p, out);
        }
        Value::StrictArray(items) => {
            out.push(10);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode(i, out);
            }
        }
        Value::Date(ms) => {
            out.push(11);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

fn key(s: &str, out: &mut Vec<u8>) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn pairs(p: &[(String, Value)], out: &mut Vec<u8>) {
    for (k, v) in p {
        key(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, 9]);
}

/// Encodes values one after another (a command's body).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_command_round_trips() {
        let values = vec![
            Value::string("connect"),
            Value::Number(1.0),
            Value::object([
                ("app", Value::string("live")),
                ("tcUrl", Value::string("rtmp://push.example.com:1935/live")),
                ("fpad", Value::Bool(false)),
                ("capabilities", Value::Number(15.0)),
                (
                    "fourCcList",
                    Value::StrictArray(vec![Value::string("hvc1")]),
                ),
                ("meta", Value::EcmaArray(vec![("a".into(), Value::Null)])),
                ("when", Value::Date(1.0)),
                ("u", Value::Undefined),
            ]),
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
        assert_eq!(values[2].get("app").and_then(Value::as_str), Some("live"));
    }

    #[test]
    fn hostile_amf_is_an_error_never_a_panic_or_a_huge_allocation() {
        assert_eq!(decode_all(&[2, 0, 5, b'a']), Err(AmfError::Truncated));
        assert_eq!(decode_all(&[0x0d]), Err(AmfError::Marker(0x0d)));
        assert_eq!(
            decode_all(&[10, 0xff, 0xff, 0xff, 0xff]),
            Err(AmfError::Truncated)
        );
        assert_eq!(decode_all(&[3; 64]), Err(AmfError::Truncated));
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&[3, 0, 1, b'k']);
        }
        assert_eq!(decode_all(&deep), Err(AmfError::TooDeep));
        assert_eq!(decode_all(&[2, 0, 1, 0xff]), Err(AmfError::NotUtf8));
    }
}
