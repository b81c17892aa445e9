//! ClickHouse column types, parsed from the text `DESCRIBE TABLE` returns.

/// The ClickHouse types the encoder knows. Anything else is [`ChType::Other`], which a
/// schema-v1 column cannot be written to (a clear error at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChType {
    /// UInt8.
    UInt8,
    /// UInt16.
    UInt16,
    /// UInt32.
    UInt32,
    /// UInt64.
    UInt64,
    /// Int8.
    Int8,
    /// Int16.
    Int16,
    /// Int32.
    Int32,
    /// Int64.
    Int64,
    /// Float32.
    Float32,
    /// Float64.
    Float64,
    /// String.
    String,
    /// FixedString(N).
    FixedString(usize),
    /// UUID.
    Uuid,
    /// DateTime or DateTime('zone') — seconds.
    DateTime,
    /// DateTime64(P[, 'zone']).
    DateTime64(u32),
    /// Nullable(T).
    Nullable(Box<ChType>),
    /// LowCardinality(T).
    LowCardinality(Box<ChType>),
    /// Array(T).
    Array(Box<ChType>),
    /// Anything else, as the server wrote it.
    Other(String),
}

impl ChType {
    /// Parses a type name as ClickHouse prints it.
    pub fn parse(s: &str) -> ChType {
        let s = s.trim();
        let inner = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        if let Some(i) = inner("Nullable") {
            return ChType::Nullable(Box::new(ChType::parse(i)));
        }
        if let Some(i) = inner("LowCardinality") {
            return ChType::LowCardinality(Box::new(ChType::parse(i)));
        }
        if let Some(i) = inner("Array") {
            return ChType::Array(Box::new(ChType::parse(i)));
        }
        if let Some(i) = inner("FixedString") {
            if let Ok(n) = i.trim().parse() {
                return ChType::FixedString(n);
            }
        }
        if let Some(i) = inner("DateTime64") {
            let p = i.split(',').next().unwrap_or("").trim();
            if let Ok(p) = p.parse() {
                return ChType::DateTime64(p);
            }
        }
        if s == "DateTime" || inner("DateTime").is_some() {
            return ChType::DateTime;
        }
        match s {
            "UInt8" => ChType::UInt8,
            "UInt16" => ChType::UInt16,
            "UInt32" => ChType::UInt32,
            "UInt64" => ChType::UInt64,
            "Int8" => ChType::Int8,
            "Int16" => ChType::Int16,
            "Int32" => ChType::Int32,
            "Int64" => ChType::Int64,
            "Float32" => ChType::Float32,
            "Float64" => ChType::Float64,
            "String" => ChType::String,
            "UUID" => ChType::Uuid,
            _ => ChType::Other(s.to_owned()),
        }
    }

    /// For integer types: (signed, bits).
    pub(crate) fn int_info(&self) -> Option<(bool, u32)> {
        Some(match self {
            ChType::UInt8 => (false, 8),
            ChType::UInt16 => (false, 16),
            ChType::UInt32 => (false, 32),
            ChType::UInt64 => (false, 64),
            ChType::Int8 => (true, 8),
            ChType::Int16 => (true, 16),
            ChType::Int32 => (true, 32),
            ChType::Int64 => (true, 64),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_describe_types() {
        assert_eq!(
            ChType::parse("LowCardinality(String)"),
            ChType::LowCardinality(Box::new(ChType::String))
        );
        assert_eq!(ChType::parse("DateTime64(3, 'UTC')"), ChType::DateTime64(3));
        assert_eq!(ChType::parse("DateTime('UTC')"), ChType::DateTime);
        assert_eq!(
            ChType::parse("Array(String)"),
            ChType::Array(Box::new(ChType::String))
        );
        assert_eq!(
            ChType::parse("Nullable(UInt32)"),
            ChType::Nullable(Box::new(ChType::UInt32))
        );
        assert_eq!(ChType::parse("FixedString(16)"), ChType::FixedString(16));
        assert_eq!(
            ChType::parse("Decimal(9, 2)"),
            ChType::Other("Decimal(9, 2)".into())
        );
    }
}
