//! The RTMP commands a gate reads (`connect`, `createStream`, `publish`,
//! `play`, and the rest passed by name) and the answers it writes (`_result`,
//! `_error`, `onStatus`), pure.

use thiserror::Error;

use super::amf0::{self, AmfError, Value};
use super::{Message, COMMAND_AMF3};

/// A command message, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub txn: f64,
    /// The command object (`connect`'s properties), or null.
    pub object: Value,
    /// What follows the object (`publish`'s name and type, `play`'s name …).
    pub args: Vec<Value>,
    /// The message stream it came on.
    pub stream_id: u32,
}

/// Why a command message is unreadable.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CommandError {
    #[error("a command's AMF0 does not parse: {0}")]
    Amf(#[from] AmfError),
    #[error("a command message does not start with a name and a transaction id")]
    Shape,
}

impl Command {
    /// Reads a command message (AMF0, or AMF3's leading zero then AMF0).
    pub fn parse(m: &Message) -> Result<Command, CommandError> {
        let body = match m.kind {
            COMMAND_AMF3 => m.payload.get(1..).unwrap_or_default(),
            _ => &m.payload[..],
        };
        let mut values = amf0::decode_all(body)?.into_iter();
        let (Some(Value::String(name)), Some(txn)) = (values.next(), values.next()) else {
            return Err(CommandError::Shape);
        };
        let txn = txn.as_f64().unwrap_or(0.0);
        let object = values.next().unwrap_or(Value::Null);
        Ok(Command {
            name,
            txn,
            object,
            args: values.collect(),
            stream_id: m.stream_id,
        })
    }

    /// The first argument as a string (`publish`'s and `play`'s stream name).
    pub fn name_arg(&self) -> Option<&str> {
        self.args.first().and_then(Value::as_str)
    }

    /// A string property of the command object (`tcUrl`, `app`, `flashVer` …).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.object.get(key).and_then(Value::as_str)
    }
}

/// `_result` for transaction `txn`.
pub fn result(stream_id: u32, txn: f64, object: Value, info: Value) -> Message {
    Message::command(
        stream_id,
        &[Value::string("_result"), Value::Number(txn), object, info],
    )
}

/// The answer to an accepted `connect`, as nginx-rtmp gives it.
pub fn connect_result(txn: f64, object_encoding: f64) -> Message {
    result(
        0,
        txn,
        Value::object([
            ("fmsVer", Value::string("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
        ]),
        Value::object([
            ("level", Value::string("status")),
            ("code", Value::string("NetConnection.Connect.Success")),
            ("description", Value::string("Connection succeeded.")),
            ("objectEncoding", Value::Number(object_encoding)),
        ]),
    )
}

/// `_error` for transaction `txn` (a refused `connect`).
pub fn error(txn: f64, code: &str, description: &str) -> Message {
    Message::command(
        0,
        &[
            Value::string("_error"),
            Value::Number(txn),
            Value::Null,
            Value::object([
                ("level", Value::string("error")),
                ("code", Value::string(code)),
                ("description", Value::string(description)),
            ]),
        ],
    )
}

/// `onStatus` on a message stream: what encoders and players show.
pub fn status(stream_id: u32, level: &str, code: &str, description: &str) -> Message {
    Message::command(
        stream_id,
        &[
            Value::string("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::object([
                ("level", Value::string(level)),
                ("code", Value::string(code)),
                ("description", Value::string(description)),
            ]),
        ],
    )
}

/// A command livegate sends an origin.
pub fn call(stream_id: u32, name: &str, txn: f64, object: Value, args: &[Value]) -> Message {
    let mut values = vec![Value::string(name), Value::Number(txn), object];
    values.extend_from_slice(args);
    Message::command(stream_id, &values)
}

/// The status code and level of an `onStatus` (or `_result`/`_error` info).
pub fn info_code(c: &Command) -> Option<(&str, &str)> {
    let info = c.args.first()?;
    Some((
        info.get("level").and_then(Value::as_str).unwrap_or(""),
        info.get("code").and_then(Value::as_str)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_back_what_was_written() {
        let m = call(
            1,
            "publish",
            5.0,
            Value::Null,
            &[Value::string("cam1?txSecret=x"), Value::string("live")],
        );
        let c = Command::parse(&m).unwrap();
        assert_eq!((c.name.as_str(), c.txn, c.stream_id), ("publish", 5.0, 1));
        assert_eq!(c.name_arg(), Some("cam1?txSecret=x"));
        let s =
            Command::parse(&status(1, "error", "NetStream.Publish.BadName", "EXPIRED")).unwrap();
        assert_eq!(info_code(&s), Some(("error", "NetStream.Publish.BadName")));
        let r = Command::parse(&connect_result(1.0, 0.0)).unwrap();
        assert_eq!(
            info_code(&r),
            Some(("status", "NetConnection.Connect.Success"))
        );
        assert_eq!(
            r.object.get("capabilities").and_then(Value::as_f64),
            Some(31.0)
        );
    }

    #[test]
    fn commands_that_are_not_commands_are_errors() {
        let bad = |payload: &'static [u8]| Message {
            kind: super::super::COMMAND_AMF0,
            timestamp: 0,
            stream_id: 0,
            payload: bytes::Bytes::from_static(payload),
        };
        assert_eq!(Command::parse(&bad(&[5])), Err(CommandError::Shape));
        assert!(matches!(
            Command::parse(&bad(&[2, 0, 9])),
            Err(CommandError::Amf(_))
        ));
    }
}
