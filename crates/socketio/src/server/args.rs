//! Event arguments: JSON values plus the binary attachments their
//! placeholders refer to.

use bytes::Bytes;
use serde_json::{Value, json};

/// The arguments of an event or an ack.
///
/// Binary data sits in `binary`; inside `values` each piece is the
/// placeholder `{"_placeholder":true,"num":i}` pointing at `binary[i]`, at
/// any depth, exactly as on the wire. [`Args::push_binary`] adds a piece and
/// returns its placeholder to put wherever it belongs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// The arguments, in order.
    pub values: Vec<Value>,
    /// Binary attachments, in placeholder order.
    pub binary: Vec<Bytes>,
}

impl Args {
    /// Arguments without binary data.
    pub fn new(values: Vec<Value>) -> Self {
        Self {
            values,
            binary: Vec::new(),
        }
    }

    /// One argument.
    pub fn one(value: Value) -> Self {
        Self::new(vec![value])
    }

    /// Adds a binary attachment and returns its placeholder.
    pub fn push_binary(&mut self, data: impl Into<Bytes>) -> Value {
        self.binary.push(data.into());
        json!({"_placeholder": true, "num": self.binary.len() - 1})
    }

    /// The `i`-th argument.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// The arguments in `range`, with every attachment (their placeholders
    /// keep pointing at the same data).
    pub fn slice(&self, range: impl std::slice::SliceIndex<[Value], Output = [Value]>) -> Self {
        Self {
            values: self
                .values
                .get(range)
                .map(<[Value]>::to_vec)
                .unwrap_or_default(),
            binary: self.binary.clone(),
        }
    }

    /// The `i`-th argument as a string.
    pub fn str(&self, i: usize) -> Option<&str> {
        self.get(i).and_then(Value::as_str)
    }

    /// The attachment a placeholder refers to.
    pub fn binary_of(&self, placeholder: &Value) -> Option<&Bytes> {
        let map = placeholder.as_object()?;
        if map.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        self.binary.get(map.get("num")?.as_u64()? as usize)
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl From<Vec<Value>> for Args {
    fn from(values: Vec<Value>) -> Self {
        Self::new(values)
    }
}

impl From<Value> for Args {
    fn from(value: Value) -> Self {
        Self::one(value)
    }
}

impl From<()> for Args {
    fn from((): ()) -> Self {
        Self::default()
    }
}
