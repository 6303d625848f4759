//! The arcface_torch verification `.bin` (`lfw.bin`, `cfp_fp.bin`, and
//! facekit's `kface.bin`): a pickle of `(bins, issame_list)`, `bins` holding
//! 2P encoded images (pair i is `bins[2i]`, `bins[2i+1]`) and `issame_list`
//! P bools.
//!
//! The writer emits protocol 3 with `SHORT_BINBYTES`/`BINBYTES`, which
//! `pickle.load` reads on its first try (no `encoding='bytes'` fallback).
//! The reader is a small pickle-opcode interpreter over what real files use
//! (protocols 2 to 5: bytes and str opcodes, Python 2 `str`, `_codecs.encode`
//! for protocol-2 bytes, memo opcodes, numpy arrays rebuilt by
//! `_reconstruct` + `BUILD` or `_frombuffer`). It recognises a fixed list of
//! callables and calls nothing: anything else is an error. Lists, tuples,
//! dicts and arrays are shared by reference, as in Python, so the memo
//! costs nothing per reuse (a list holding one array many times reads as
//! Python reads it, and a "billion laughs" nesting stays small); the images
//! are copied out only after their total is checked against
//! [`MAX_IMAGE_BYTES`].

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

/// The most image bytes a `.bin` may refer to (what `read` allocates): far
/// beyond any real verification set (lfw.bin holds 12,000 images in 70 MB).
pub(crate) const MAX_IMAGE_BYTES: u64 = 4 << 30;

/// The pairs of a verification `.bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationBin {
    /// Encoded images (JPEG for every known writer), two per pair.
    pub images: Vec<Vec<u8>>,
    /// One label per pair: true when both images show the same identity.
    pub issame: Vec<bool>,
}

impl VerificationBin {
    pub(crate) fn pair_count(&self) -> usize {
        self.issame.len()
    }

    pub fn genuine_count(&self) -> u64 {
        self.issame.iter().filter(|&&s| s).count() as u64
    }

    pub fn impostor_count(&self) -> u64 {
        self.issame.len() as u64 - self.genuine_count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BinError {
    #[error("not a pickle (first byte {0:#04x}, expected the protocol opcode 0x80)")]
    NotPickle(u8),
    #[error("unsupported pickle protocol {0} (2 to 5 are read)")]
    Protocol(u8),
    #[error("pickle ends early (at byte {0})")]
    Truncated(usize),
    #[error("unsupported pickle opcode {op:#04x} at byte {at}")]
    Opcode { op: u8, at: usize },
    #[error("pickle calls {0} at byte {1}, which no verification .bin needs; not executed")]
    Callable(String, usize),
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: String },
    #[error("not a verification .bin: {0}")]
    Layout(String),
}

/// Writes `(images, issame)` as a protocol-3 pickle, streaming: the images
/// come one at a time (read from disk, say), two per label.
pub fn write<W, I, B>(out: &mut W, images: I, issame: &[bool]) -> io::Result<()>
where
    W: Write,
    I: IntoIterator<Item = io::Result<B>>,
    I::IntoIter: ExactSizeIterator,
    B: AsRef<[u8]>,
{
    let mut images = images.into_iter();
    if images.len() != 2 * issame.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} images for {} pairs (two per pair expected)",
                images.len(),
                issame.len()
            ),
        ));
    }
    out.write_all(&[PROTO, 3, EMPTY_LIST])?;
    // Batches of 1000 appends, as Python's pickler writes them.
    let mut left = images.len();
    while left > 0 {
        let batch = left.min(1000);
        if batch > 1 {
            out.write_all(&[MARK])?;
        }
        for image in images.by_ref().take(batch) {
            let image = image?;
            let image = image.as_ref();
            match u8::try_from(image.len()) {
                Ok(len) => out.write_all(&[SHORT_BINBYTES, len])?,
                Err(_) => {
                    let len = u32::try_from(image.len()).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidInput, "image over 4 GiB")
                    })?;
                    out.write_all(&[BINBYTES])?;
                    out.write_all(&len.to_le_bytes())?;
                }
            }
            out.write_all(image)?;
        }
        out.write_all(&[if batch > 1 { APPENDS } else { APPEND }])?;
        left -= batch;
    }
    out.write_all(&[EMPTY_LIST])?;
    for batch in issame.chunks(1000) {
        if batch.len() > 1 {
            out.write_all(&[MARK])?;
        }
        for &same in batch {
            out.write_all(&[if same { NEWTRUE } else { NEWFALSE }])?;
        }
        out.write_all(&[if batch.len() > 1 { APPENDS } else { APPEND }])?;
    }
    out.write_all(&[TUPLE2, STOP])
}

/// The pickle `write` produces, in memory.
pub fn to_bytes(images: &[Vec<u8>], issame: &[bool]) -> io::Result<Vec<u8>> {
    let mut out =
        Vec::with_capacity(images.iter().map(|i| i.len() + 5).sum::<usize>() + issame.len() + 16);
    write(&mut out, images.iter().map(Ok), issame)?;
    Ok(out)
}

/// Reads a verification `.bin` without executing anything.
pub fn read(bytes: &[u8]) -> Result<VerificationBin, BinError> {
    let value = Machine::new(bytes).run()?;
    let Value::Tuple(parts) = value else {
        return Err(BinError::Layout(format!(
            "the pickle holds {}, not a (bins, issame_list) tuple",
            value.kind()
        )));
    };
    let [Value::List(bins), Value::List(issame)] = &parts[..] else {
        return Err(BinError::Layout(if parts.len() == 2 {
            "bins and issame_list must both be lists".into()
        } else {
            format!("the top tuple has {} items, not 2", parts.len())
        }));
    };
    let bins = bins.borrow();
    let data = bins
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Array(a) => a
                .borrow()
                .bytes()
                .map_err(|e| BinError::Layout(format!("bins[{i}]: {e}"))),
            other => Err(BinError::Layout(format!(
                "bins[{i}] is {}, not encoded image bytes",
                other.kind()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // One object may stand for many images: check the total before copying.
    let total = data
        .iter()
        .try_fold(0u64, |sum, d| sum.checked_add(d.len() as u64))
        .filter(|&t| t <= MAX_IMAGE_BYTES);
    if total.is_none() {
        return Err(BinError::Layout(format!(
            "its {} images add up to more than {} bytes, the most facekit reads",
            data.len(),
            MAX_IMAGE_BYTES
        )));
    }
    drop(bins);
    let images: Vec<Vec<u8>> = data.into_iter().map(|d| d.to_vec()).collect();
    let issame = issame
        .borrow()
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Bool(b) => Ok(*b),
            other => Err(BinError::Layout(format!(
                "issame_list[{i}] is {}, not a bool",
                other.kind()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if images.len() != 2 * issame.len() {
        return Err(BinError::Layout(format!(
            "{} images for {} labels (two images per pair expected)",
            images.len(),
            issame.len()
        )));
    }
    Ok(VerificationBin { images, issame })
}

// Opcodes (CPython Lib/pickle.py).
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const REDUCE: u8 = b'R';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const PROTO: u8 = 0x80;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';

/// A numpy array being rebuilt: `_reconstruct` gives an empty one, `BUILD`
/// fills it; `_frombuffer` gives a full one.
#[derive(Debug, Clone)]
struct Array {
    dtype: Option<Rc<str>>,
    data: Option<Rc<Vec<u8>>>,
}

impl Array {
    fn bytes(&self) -> Result<Rc<Vec<u8>>, String> {
        match self.dtype.as_deref() {
            Some("u1" | "i1" | "b1") => {}
            Some(other) => return Err(format!("a numpy array of dtype {other}, not uint8")),
            None => return Err("a numpy array whose state was never set".into()),
        }
        self.data
            .clone()
            .ok_or_else(|| "a numpy array without data".into())
    }
}

fn shared<T>(value: T) -> Rc<RefCell<T>> {
    Rc::new(RefCell::new(value))
}

/// The objects the interpreter knows. Everything but the scalars sits
/// behind `Rc`: a clone (DUP, a memo GET) is a reference, as in Python, and
/// the mutable ones (filled by APPEND, SETITEM, BUILD) share one cell.
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Bytes(Rc<Vec<u8>>),
    Str(Rc<str>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<[Value]>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(Rc<str>),
    Dtype(Rc<str>),
    Array(Rc<RefCell<Array>>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "a str",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Dtype(_) => "a numpy dtype",
            Value::Array(_) => "a numpy array",
        }
    }
}

/// `numpy.core.*` in numpy 1, `numpy._core.*` in numpy 2.
fn numpy_name(global: &str, module: &str, name: &str) -> bool {
    [
        format!("numpy.core.{module}.{name}"),
        format!("numpy._core.{module}.{name}"),
    ]
    .iter()
    .any(|g| g == global)
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Value>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Machine<'a> {
        Machine {
            bytes,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Default::default(),
        }
    }

    fn malformed(&self, what: impl Into<String>) -> BinError {
        BinError::Malformed {
            at: self.pos,
            what: what.into(),
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], BinError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(BinError::Truncated(self.bytes.len()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, BinError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BinError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, BinError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, BinError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<&'a str, BinError> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(BinError::Truncated(self.bytes.len()))?;
        let line = std::str::from_utf8(&rest[..n])
            .map_err(|_| self.malformed("a text argument that is not UTF-8"))?;
        self.pos += n + 1;
        Ok(line)
    }

    fn pop(&mut self) -> Result<Value, BinError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.malformed("pop across a mark"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn top(&mut self) -> Result<&mut Value, BinError> {
        let at = self.pos;
        self.stack.last_mut().ok_or(BinError::Malformed {
            at,
            what: "stack underflow".into(),
        })
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, BinError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("no mark on the stack"))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn push_bytes(&mut self, n: u64) -> Result<(), BinError> {
        let data = self.take(n)?.to_vec();
        self.stack.push(Value::Bytes(Rc::new(data)));
        Ok(())
    }

    fn push_str(&mut self, n: u64) -> Result<(), BinError> {
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|_| self.malformed("a str that is not UTF-8"))?;
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    fn put(&mut self, key: u64) -> Result<(), BinError> {
        let value = self
            .stack
            .last()
            .ok_or_else(|| self.malformed("memo put on an empty stack"))?
            .clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn get(&mut self, key: u64) -> Result<(), BinError> {
        let value = self
            .memo
            .get(&key)
            .ok_or_else(|| self.malformed(format!("memo {key} is not set")))?
            .clone();
        self.stack.push(value);
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), BinError> {
        match self.top()? {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.malformed(format!("append to {kind}")))
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), BinError> {
        if items.len() % 2 != 0 {
            return Err(self.malformed("odd number of dict items"));
        }
        let mut it = items.into_iter();
        let pairs: Vec<(Value, Value)> =
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect();
        match self.top()? {
            Value::Dict(dict) => {
                dict.borrow_mut().extend(pairs);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.malformed(format!("set items on {kind}")))
            }
        }
    }

    fn run(mut self) -> Result<Value, BinError> {
        match self.bytes.first() {
            Some(&PROTO) => {}
            Some(&b) => return Err(BinError::NotPickle(b)),
            None => return Err(BinError::Truncated(0)),
        }
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                PROTO => {
                    let v = self.u8()?;
                    if !(2..=5).contains(&v) {
                        return Err(BinError::Protocol(v));
                    }
                }
                FRAME => {
                    self.u64()?;
                }
                STOP => {
                    let value = self.pop()?;
                    return Ok(value);
                }
                MARK => self.marks.push(self.stack.len()),
                POP => {
                    self.pop()?;
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                NONE => self.stack.push(Value::None),
                NEWTRUE => self.stack.push(Value::Bool(true)),
                NEWFALSE => self.stack.push(Value::Bool(false)),
                BININT => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                BININT1 => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                BININT2 => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                LONG1 => {
                    let n = self.u8()? as usize;
                    let raw = self.take(n as u64)?;
                    if n > 8 {
                        return Err(self.malformed("an integer wider than 64 bits"));
                    }
                    // Little-endian two's complement, sign-extended.
                    let fill = if raw.last().is_some_and(|&b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut a = [fill; 8];
                    a[..n].copy_from_slice(raw);
                    self.stack.push(Value::Int(i64::from_le_bytes(a)));
                }
                SHORT_BINBYTES | SHORT_BINSTRING => {
                    let n = self.u8()?;
                    self.push_bytes(n as u64)?;
                }
                BINBYTES => {
                    let n = self.u32()?;
                    self.push_bytes(n as u64)?;
                }
                BINSTRING => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.malformed("negative string length"));
                    }
                    self.push_bytes(n as u64)?;
                }
                BINBYTES8 | BYTEARRAY8 => {
                    let n = self.u64()?;
                    self.push_bytes(n)?;
                }
                SHORT_BINUNICODE => {
                    let n = self.u8()?;
                    self.push_str(n as u64)?;
                }
                BINUNICODE => {
                    let n = self.u32()?;
                    self.push_str(n as u64)?;
                }
                BINUNICODE8 => {
                    let n = self.u64()?;
                    self.push_str(n)?;
                }
                EMPTY_LIST => self.stack.push(Value::List(shared(Vec::new()))),
                EMPTY_TUPLE => self.stack.push(Value::Tuple(Rc::new([]))),
                EMPTY_DICT => self.stack.push(Value::Dict(shared(Vec::new()))),
                LIST => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(shared(items)));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items.into()));
                }
                DICT => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(shared(Vec::new())));
                    self.set_items(items)?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = (op - TUPLE1 + 1) as usize;
                    let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    items.reverse();
                    self.stack.push(Value::Tuple(items.into()));
                }
                APPEND => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                PUT => {
                    let key = self
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed("bad PUT index"))?;
                    self.put(key)?;
                }
                BINPUT => {
                    let key = self.u8()?;
                    self.put(key as u64)?;
                }
                LONG_BINPUT => {
                    let key = self.u32()?;
                    self.put(key as u64)?;
                }
                MEMOIZE => {
                    let key = self.memo.len() as u64;
                    self.put(key)?;
                }
                GET => {
                    let key = self
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed("bad GET index"))?;
                    self.get(key)?;
                }
                BINGET => {
                    let key = self.u8()?;
                    self.get(key as u64)?;
                }
                LONG_BINGET => {
                    let key = self.u32()?;
                    self.get(key as u64)?;
                }
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack
                        .push(Value::Global(format!("{module}.{name}").into()));
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.malformed("STACK_GLOBAL without two strings"));
                    };
                    self.stack
                        .push(Value::Global(format!("{module}.{name}").into()));
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let (Value::Global(name), Value::Tuple(args)) = (callable, args) else {
                        return Err(self.malformed("REDUCE without a global and an argument tuple"));
                    };
                    let value = self.call(&name, args, at)?;
                    self.stack.push(value);
                }
                BUILD => {
                    let state = self.pop()?;
                    self.build(state)?;
                }
                _ => return Err(BinError::Opcode { op, at }),
            }
        }
    }

    /// The callables real `.bin` files use, recognised by name and
    /// evaluated here; nothing is ever imported or called.
    fn call(&self, name: &str, args: Rc<[Value]>, at: usize) -> Result<Value, BinError> {
        let bad_args = || BinError::Malformed {
            at,
            what: format!("unexpected arguments to {name}"),
        };
        match name {
            // How protocol 2 under Python 3 spells bytes: `_codecs.encode(text, 'latin1')`.
            "_codecs.encode" => match &args[..] {
                [Value::Str(text), Value::Str(enc)] if matches!(&**enc, "latin1" | "latin-1") => {
                    latin1(text)
                        .map(|b| Value::Bytes(Rc::new(b)))
                        .ok_or_else(bad_args)
                }
                _ => Err(bad_args()),
            },
            "__builtin__.bytes"
            | "builtins.bytes"
            | "__builtin__.bytearray"
            | "builtins.bytearray" => match &args[..] {
                [] => Ok(Value::Bytes(Rc::new(Vec::new()))),
                [Value::Bytes(b)] => Ok(Value::Bytes(b.clone())),
                [Value::Str(text), Value::Str(enc)] if matches!(&**enc, "latin1" | "latin-1") => {
                    latin1(text)
                        .map(|b| Value::Bytes(Rc::new(b)))
                        .ok_or_else(bad_args)
                }
                _ => Err(bad_args()),
            },
            _ if numpy_name(name, "multiarray", "_reconstruct") => match &args[..] {
                [Value::Global(class), _, _] if &**class == "numpy.ndarray" => {
                    Ok(Value::Array(shared(Array {
                        dtype: None,
                        data: None,
                    })))
                }
                _ => Err(bad_args()),
            },
            "numpy.dtype" => match &args[..] {
                [Value::Str(code), ..] => Ok(Value::Dtype(code.clone())),
                // Python 2 wrote the code as a byte string.
                [Value::Bytes(code), ..] => match std::str::from_utf8(code) {
                    Ok(code) => Ok(Value::Dtype(code.into())),
                    Err(_) => Err(bad_args()),
                },
                _ => Err(bad_args()),
            },
            _ if numpy_name(name, "numeric", "_frombuffer") => match &args[..] {
                [Value::Bytes(data), Value::Dtype(dtype), shape, ..]
                    if element_count(shape) == Some(data.len() as u64) =>
                {
                    Ok(Value::Array(shared(Array {
                        dtype: Some(dtype.clone()),
                        data: Some(data.clone()),
                    })))
                }
                _ => Err(bad_args()),
            },
            _ => Err(BinError::Callable(name.to_string(), at)),
        }
    }

    /// `BUILD`: numpy's `__setstate__` for arrays (version, shape, dtype,
    /// fortran order, raw data); dtypes keep their constructor's code.
    fn build(&mut self, state: Value) -> Result<(), BinError> {
        let at = self.pos;
        let malformed = |what: &str| BinError::Malformed {
            at,
            what: what.to_string(),
        };
        match self.top()? {
            Value::Dtype(_) => Ok(()),
            Value::Array(array) => {
                let Value::Tuple(items) = state else {
                    return Err(malformed("numpy array state is not a tuple"));
                };
                let [_version, shape, dtype, _fortran, data] = &items[..] else {
                    return Err(malformed(
                        "numpy array state is not (version, shape, dtype, fortran, data)",
                    ));
                };
                let Value::Dtype(dtype) = dtype else {
                    return Err(malformed("numpy array state without a dtype"));
                };
                let data = match data {
                    Value::Bytes(b) => b.clone(),
                    Value::Str(s) => {
                        Rc::new(latin1(s).ok_or_else(|| malformed("numpy array data not latin-1"))?)
                    }
                    _ => return Err(malformed("numpy array data is not a byte string")),
                };
                if element_count(shape) != Some(data.len() as u64) {
                    return Err(malformed("numpy array shape does not match its data"));
                }
                let mut array = array.borrow_mut();
                array.dtype = Some(dtype.clone());
                array.data = Some(data);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(malformed(&format!("BUILD on {kind}")))
            }
        }
    }
}

/// Elements of a numpy shape tuple; the arrays read are one byte per
/// element, so this must equal the data length.
fn element_count(shape: &Value) -> Option<u64> {
    let Value::Tuple(dims) = shape else {
        return None;
    };
    dims.iter().try_fold(1u64, |n, d| match d {
        Value::Int(d) => n.checked_mul(u64::try_from(*d).ok()?),
        _ => None,
    })
}

fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| (0..(i * 97 % 700)).map(|j| (i * 31 + j) as u8).collect())
            .collect()
    }

    #[test]
    fn writer_follows_the_protocol_3_recipe() {
        let imgs = vec![vec![0xff, 0xd8], vec![7u8; 300]];
        let bytes = to_bytes(&imgs, &[true]).unwrap();
        let mut expected = vec![0x80, 3, b']', b'(', b'C', 2, 0xff, 0xd8, b'B', 44, 1, 0, 0];
        expected.extend_from_slice(&[7u8; 300]);
        expected.extend_from_slice(&[b'e', b']', 0x88, b'a', 0x86, b'.']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trip_keeps_bytes_and_labels() {
        for pairs in [0, 1, 3, 499, 500, 501, 1200] {
            let imgs = images(2 * pairs);
            let issame: Vec<bool> = (0..pairs).map(|i| i % 3 != 1).collect();
            let back = read(&to_bytes(&imgs, &issame).unwrap()).unwrap();
            assert_eq!(back.images, imgs, "{pairs} pairs");
            assert_eq!(back.issame, issame);
            assert_eq!(back.genuine_count() + back.impostor_count(), pairs as u64);
        }
    }

    #[test]
    fn writer_refuses_a_count_mismatch() {
        assert!(to_bytes(&images(3), &[true]).is_err());
    }

    #[test]
    fn reader_executes_nothing_it_does_not_know() {
        // pickle.dumps of `os.system('echo hi')`-style payload: GLOBAL + REDUCE.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
        let err = read(evil).unwrap_err();
        assert!(
            matches!(err, BinError::Callable(ref n, _) if n == "os.system"),
            "{err}"
        );
        assert!(err.to_string().contains("not executed"));
    }

    #[test]
    fn reader_reports_damage_clearly() {
        let good = to_bytes(&images(4), &[true, false]).unwrap();
        for cut in [0, 1, 2, 10, good.len() - 1] {
            assert!(read(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            read(b"PK\x03\x04"),
            Err(BinError::NotPickle(b'P'))
        ));
        assert!(matches!(
            read(b"\x80\x03\xff."),
            Err(BinError::Opcode { op: 0xff, at: 2 })
        ));
        let wrong_count = b"\x80\x03]C\x01a\x85]\x88a\x86.";
        assert!(matches!(
            read(wrong_count),
            Err(BinError::Malformed { .. }) | Err(BinError::Layout(_))
        ));
        let one_image = b"\x80\x03]C\x01xa]\x88a\x86.";
        let err = read(one_image).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a verification .bin: 1 images for 1 labels (two images per pair expected)"
        );
    }

    /// `(bins, issame)` where bins holds `array` `copies` times by memo
    /// reference: a numpy uint8 array rebuilt by `_reconstruct` + `BUILD`,
    /// memoised before its state is set, as `pickle.dumps` writes it.
    fn shared_array_pickle(image: &[u8], copies: u32) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"cnumpy.core.multiarray\n_reconstruct\nq\x00");
        p.extend(b"cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01b\x87q\x03Rq\x04");
        // state: (1, (len,), dtype('u1'), False, data)
        p.extend(b"(K\x01J");
        p.extend((image.len() as u32).to_le_bytes());
        p.extend(b"\x85cnumpy\ndtype\nX\x02\x00\x00\x00u1K\x00K\x01\x87R\x89B");
        p.extend((image.len() as u32).to_le_bytes());
        p.extend(image);
        p.extend(b"tb0]q\x05(");
        for _ in 0..copies {
            p.extend(b"h\x04");
        }
        p.extend(b"e]q\x06(");
        for i in 0..copies / 2 {
            p.push(if i % 2 == 0 { 0x88 } else { 0x89 });
        }
        p.extend(b"e\x86.");
        p
    }

    #[test]
    fn a_list_reusing_one_array_reads_as_python_reads_it() {
        let bin = read(&shared_array_pickle(b"\xff\xd8jpeg", 4)).unwrap();
        assert_eq!(bin.images, vec![b"\xff\xd8jpeg".to_vec(); 4]);
        assert_eq!(bin.issame, [true, false]);
    }

    #[test]
    fn images_referred_to_many_times_are_bounded_before_allocating() {
        // 1 MiB referred to 8,192 times: 8 GiB of images from a 1 MiB file.
        let err = read(&shared_array_pickle(&vec![7u8; 1 << 20], 8192)).unwrap_err();
        assert!(err.to_string().contains("the most facekit reads"), "{err}");
    }

    #[test]
    fn reader_survives_random_damage() {
        let good = to_bytes(&images(6), &[true, false, true]).unwrap();
        let mut x = 12345u32;
        for _ in 0..2000 {
            let mut bad = good.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (x >> 8) as usize % bad.len();
                bad[i] = (x >> 3) as u8;
            }
            let _ = read(&bad);
        }
    }
}
