//! Just enough of ClickHouse's `Native` format to walk a stream block by
//! block: each block's columns (name and type) and its number of rows, the
//! values skipped unread. A dump counts its rows this way while it writes
//! them, and a restore checks a file's blocks while it sends them.
//!
//! The layout is what ClickHouse writes over HTTP (client revision 0, the
//! same on 18.16 and current releases): per block, the number of columns
//! and of rows (varints), then per column its name and type (varint length
//! and bytes) and, when the block has rows, its values. Fixed-width values
//! are packed; a `String` is a varint length and bytes; `Nullable(T)` is a
//! byte per row then `T`; `Array(T)` is one `u64` end offset per row then
//! `T` for all elements; a `Tuple` is each element's column in turn; a
//! `Map(K, V)` is an `Array(Tuple(K, V))`. Other types (`LowCardinality`,
//! `AggregateFunction`, `Variant`, …) are refused: codestats' tables have
//! none.

use super::manifest::ColumnEntry;
use clickhouse::native::DataTypeNode;
use std::io::{self, BufRead};

/// Longest column or type name accepted: anything longer is not a Native
/// stream.
const MAX_NAME_BYTES: u64 = 64 << 10;
/// Most columns accepted in a block.
const MAX_COLUMNS: u64 = 10_000;

/// A block's header: its columns and its number of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// `(name, type)` of each column, in order.
    pub columns: Vec<(String, String)>,
    pub rows: u64,
}

impl BlockHeader {
    /// Refuses a block whose columns are not `expected` (names and types,
    /// in order).
    pub fn check(&self, expected: &[ColumnEntry]) -> Result<()> {
        let same = self.columns.len() == expected.len()
            && self
                .columns
                .iter()
                .zip(expected)
                .all(|((name, data_type), e)| *name == e.name && *data_type == e.data_type);
        if same {
            return Ok(());
        }
        let list = |columns: Vec<String>| columns.join(", ");
        Err(format_error(format!(
            "a block has columns ({}), expected ({})",
            list(
                self.columns
                    .iter()
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect()
            ),
            list(
                expected
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.data_type))
                    .collect()
            )
        )))
    }
}

/// Why a stream could not be walked.
#[derive(Debug)]
pub enum NativeError {
    /// Reading the stream (or, through a tee, writing it on) failed.
    Io(io::Error),
    /// The bytes are not a Native stream, or end inside a block.
    Format(String),
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeError::Io(e) => write!(f, "{e}"),
            NativeError::Format(msg) => write!(f, "{msg}"),
        }
    }
}

impl From<io::Error> for NativeError {
    fn from(e: io::Error) -> Self {
        NativeError::Io(e)
    }
}

type Result<T> = std::result::Result<T, NativeError>;

fn format_error(msg: impl Into<String>) -> NativeError {
    NativeError::Format(msg.into())
}

/// Walks every block of `input` to its end, calling `on_block` with each
/// header once the block's values are passed, and returns the rows in all.
/// The stream must end exactly after a block.
pub fn read_blocks<R: BufRead>(
    input: &mut R,
    mut on_block: impl FnMut(&BlockHeader) -> Result<()>,
) -> Result<u64> {
    let mut total: u64 = 0;
    while !input.fill_buf()?.is_empty() {
        let header = read_block(input)?;
        on_block(&header)?;
        total = total
            .checked_add(header.rows)
            .ok_or_else(|| format_error("row count overflows"))?;
    }
    Ok(total)
}

fn read_block<R: BufRead>(input: &mut R) -> Result<BlockHeader> {
    let columns = read_varint(input)?;
    if columns > MAX_COLUMNS {
        return Err(format_error(format!(
            "a block of {columns} columns: not a Native stream"
        )));
    }
    let rows = read_varint(input)?;
    let mut header = BlockHeader {
        columns: Vec::with_capacity(columns as usize),
        rows,
    };
    for _ in 0..columns {
        let name = read_name(input)?;
        let type_name = read_name(input)?;
        if rows > 0 {
            let data_type = DataTypeNode::new(&type_name)
                .map_err(|e| format_error(format!("column {name}: type {type_name:?}: {e}")))?;
            skip_values(input, &data_type, rows).map_err(|e| in_column(e, &name, &type_name))?;
        }
        header.columns.push((name, type_name));
    }
    Ok(header)
}

fn in_column(e: NativeError, name: &str, type_name: &str) -> NativeError {
    match e {
        NativeError::Format(msg) => format_error(format!("column {name} ({type_name}): {msg}")),
        io => io,
    }
}

/// Passes the values of `n` rows of `data_type`.
fn skip_values<R: BufRead>(input: &mut R, data_type: &DataTypeNode, n: u64) -> Result<()> {
    use DataTypeNode as T;
    if n == 0 {
        return Ok(());
    }
    match data_type {
        T::String => {
            for _ in 0..n {
                let len = read_varint(input)?;
                skip(input, len)?;
            }
            Ok(())
        }
        T::Nullable(inner) => {
            skip(input, n)?;
            skip_values(input, inner, n)
        }
        T::Array(inner) => {
            let elements = read_offsets(input, n)?;
            skip_values(input, inner, elements)
        }
        T::Map([key, value]) => {
            let elements = read_offsets(input, n)?;
            skip_values(input, key, elements)?;
            skip_values(input, value, elements)
        }
        T::Tuple(items) => {
            for item in items {
                skip_values(input, item, n)?;
            }
            Ok(())
        }
        T::SimpleAggregateFunction(_, inner) => skip_values(input, inner, n),
        other => match fixed_width(other) {
            Some(width) => skip(
                input,
                n.checked_mul(width)
                    .ok_or_else(|| format_error("column size overflows"))?,
            ),
            None => Err(format_error(format!(
                "type {other:?} is not supported by codestats backups"
            ))),
        },
    }
}

/// Bytes per value of a fixed-width type.
fn fixed_width(data_type: &DataTypeNode) -> Option<u64> {
    use DataTypeNode as T;
    Some(match data_type {
        T::Bool | T::UInt8 | T::Int8 => 1,
        T::UInt16 | T::Int16 | T::Date | T::BFloat16 => 2,
        T::UInt32 | T::Int32 | T::Float32 | T::DateTime(_) | T::Date32 | T::IPv4 | T::Time => 4,
        T::UInt64 | T::Int64 | T::Float64 | T::DateTime64(..) | T::Time64(_) | T::Interval(_) => 8,
        T::UInt128 | T::Int128 | T::UUID | T::IPv6 | T::Point => 16,
        T::UInt256 | T::Int256 => 32,
        T::FixedString(n) => *n as u64,
        // `EnumType` is not re-exported by the crate: its name tells.
        T::Enum(kind, _) if format!("{kind:?}") == "Enum8" => 1,
        T::Enum(..) => 2,
        T::Decimal(precision, _, _) => match precision {
            0..=9 => 4,
            10..=18 => 8,
            19..=38 => 16,
            _ => 32,
        },
        _ => return None,
    })
}

/// Reads `n` array end offsets and returns the last: the number of
/// elements of all `n` arrays.
fn read_offsets<R: BufRead>(input: &mut R, n: u64) -> Result<u64> {
    let before_last = (n - 1)
        .checked_mul(8)
        .ok_or_else(|| format_error("array offsets overflow"))?;
    skip(input, before_last)?;
    let mut last = [0u8; 8];
    read_exact(input, &mut last)?;
    Ok(u64::from_le_bytes(last))
}

fn read_name<R: BufRead>(input: &mut R) -> Result<String> {
    let len = read_varint(input)?;
    if len > MAX_NAME_BYTES {
        return Err(format_error(format!(
            "a name of {len} bytes: not a Native stream"
        )));
    }
    let mut bytes = vec![0; len as usize];
    read_exact(input, &mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An unsigned LEB128 number, as ClickHouse writes sizes.
fn read_varint<R: BufRead>(input: &mut R) -> Result<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = read_byte(input)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format_error("a varint longer than 10 bytes"))
}

fn read_byte<R: BufRead>(input: &mut R) -> Result<u8> {
    let byte = *input.fill_buf()?.first().ok_or_else(truncated)?;
    input.consume(1);
    Ok(byte)
}

fn read_exact<R: BufRead>(input: &mut R, out: &mut [u8]) -> Result<()> {
    input.read_exact(out).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => truncated(),
        _ => NativeError::Io(e),
    })
}

fn skip<R: BufRead>(input: &mut R, mut n: u64) -> Result<()> {
    while n > 0 {
        let available = input.fill_buf()?.len();
        if available == 0 {
            return Err(truncated());
        }
        let step = available.min(usize::try_from(n).unwrap_or(usize::MAX));
        input.consume(step);
        n -= step as u64;
    }
    Ok(())
}

fn truncated() -> NativeError {
    format_error("the stream ends inside a block")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds Native streams by hand, as ClickHouse writes them.
    #[derive(Default)]
    struct Stream(Vec<u8>);

    impl Stream {
        fn varint(&mut self, mut n: u64) -> &mut Self {
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    self.0.push(byte);
                    return self;
                }
                self.0.push(byte | 0x80);
            }
        }

        fn string(&mut self, s: &[u8]) -> &mut Self {
            self.varint(s.len() as u64);
            self.0.extend_from_slice(s);
            self
        }

        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.0.extend_from_slice(b);
            self
        }

        fn block(&mut self, columns: u64, rows: u64) -> &mut Self {
            self.varint(columns).varint(rows)
        }

        fn column(&mut self, name: &str, data_type: &str) -> &mut Self {
            self.string(name.as_bytes()).string(data_type.as_bytes())
        }
    }

    fn walk(bytes: &[u8]) -> Result<(u64, Vec<BlockHeader>)> {
        let mut headers = Vec::new();
        let mut input = io::BufReader::with_capacity(3, bytes);
        let rows = read_blocks(&mut input, |h| {
            headers.push(h.clone());
            Ok(())
        })?;
        Ok((rows, headers))
    }

    #[test]
    fn counts_rows_of_every_block() {
        let mut s = Stream::default();
        s.block(3, 2)
            .column("id", "UInt64")
            .bytes(&[1; 16])
            .column("name", "String")
            .string(b"rust")
            .string(&[b'x'; 300])
            .column("at", "DateTime('UTC')")
            .bytes(&[0; 8]);
        s.block(3, 1)
            .column("id", "UInt64")
            .bytes(&[2; 8])
            .column("name", "String")
            .string(b"")
            .column("at", "DateTime('UTC')")
            .bytes(&[0; 4]);
        // An empty block (a header) has names and types, no values.
        s.block(3, 0)
            .column("id", "UInt64")
            .column("name", "String")
            .column("at", "DateTime('UTC')");
        let (rows, headers) = walk(&s.0).unwrap();
        assert_eq!(rows, 3);
        assert_eq!(
            headers.iter().map(|h| h.rows).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        assert_eq!(
            headers[0].columns[2],
            ("at".into(), "DateTime('UTC')".into())
        );
        assert_eq!(walk(&[]).unwrap().0, 0, "no blocks: no rows");
    }

    #[test]
    fn walks_nested_types() {
        let mut s = Stream::default();
        s.block(5, 2)
            // Nullable(String): null map, then every value.
            .column("n", "Nullable(String)")
            .bytes(&[0, 1])
            .string(b"a")
            .string(b"")
            // Array(UInt16): end offsets 1, 3; then 3 values.
            .column("a", "Array(UInt16)")
            .bytes(&1u64.to_le_bytes())
            .bytes(&3u64.to_le_bytes())
            .bytes(&[7; 6])
            // Tuple(UInt8, String): each element's column.
            .column("t", "Tuple(UInt8, String)")
            .bytes(&[1, 2])
            .string(b"x")
            .string(b"yz")
            // Map(String, UInt32): offsets 0, 1; keys; values.
            .column("m", "Map(String, UInt32)")
            .bytes(&0u64.to_le_bytes())
            .bytes(&1u64.to_le_bytes())
            .string(b"k")
            .bytes(&[0; 4])
            .column("f", "FixedString(3)")
            .bytes(b"abcdef");
        assert_eq!(walk(&s.0).unwrap().0, 2);
    }

    #[test]
    fn checks_a_block_against_the_columns_expected() {
        let header = BlockHeader {
            columns: vec![("a".into(), "UInt8".into()), ("b".into(), "String".into())],
            rows: 1,
        };
        let column = |name: &str, data_type: &str| ColumnEntry {
            name: name.into(),
            data_type: data_type.into(),
        };
        assert!(
            header
                .check(&[column("a", "UInt8"), column("b", "String")])
                .is_ok()
        );
        for expected in [
            vec![column("a", "UInt8")],
            vec![column("b", "String"), column("a", "UInt8")],
            vec![column("a", "UInt16"), column("b", "String")],
        ] {
            let err = header.check(&expected).unwrap_err().to_string();
            assert!(
                err.contains("a block has columns (a UInt8, b String)"),
                "{err}"
            );
        }
    }

    /// Each case: a stream that is not whole Native blocks, and a part of
    /// the refusal.
    #[test]
    fn refuses_what_is_not_whole_native_blocks() {
        let whole = {
            let mut s = Stream::default();
            s.block(1, 2).column("id", "UInt32").bytes(&[0; 8]);
            s.0
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (whole[..whole.len() - 1].to_vec(), "ends inside a block"),
            (whole[..3].to_vec(), "ends inside a block"),
            ([&whole[..], &[1]].concat(), "ends inside a block"),
            (
                b"Code: 241, e.displayText() = DB::Exception".to_vec(),
                "ends inside a block",
            ),
            (
                [&[1u8, 1, 0x80, 0x80, 0x08][..], &[0; 8]].concat(),
                "a name of 131072 bytes",
            ),
            (
                [&[0xff, 0xff, 0x01][..], &[0; 8]].concat(),
                "32767 columns: not a Native stream",
            ),
            (vec![0xff; 12], "varint longer than 10 bytes"),
            (
                {
                    let mut s = Stream::default();
                    s.block(1, 1)
                        .column("x", "LowCardinality(String)")
                        .bytes(&[0; 40]);
                    s.0
                },
                "not supported",
            ),
            (
                {
                    let mut s = Stream::default();
                    s.block(1, 1).column("x", "NoSuchType").bytes(&[0; 4]);
                    s.0
                },
                "column x: type \"NoSuchType\"",
            ),
        ];
        for (bytes, expected) in cases {
            let err = walk(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}
