//! Hyperscan multi-literal prefilter.
//!
//! The detection engine gives every rule's fast pattern to a [`PatternSetBuilder`], compiles one
//! block-mode Hyperscan database per rule group ([`PatternSet`]) and, for each buffer, asks
//! [`PatternSet::scan`] which rules' literals occur in it; only those rules are evaluated.
//!
//! # Bindings: hand-written FFI, not the `hyperscan` crate
//!
//! The `hyperscan` crate (0.3.2, links the system `libhs` through pkg-config) builds with rustc
//! 1.95, but its pure-literal API (`Literal`, feeding `hs_compile_lit_multi`) keeps each literal
//! as a Rust `String`. Suricata contents are arbitrary bytes (`|ff d8 ff|`, `|00 00|`), so
//! anything that is not valid UTF-8 could not be given to it without undefined behaviour. It has
//! not been released since 2022 and brings `anyhow`, `bitflags` 1, `derive_more` 0.99,
//! `thiserror` 1, `foreign-types`, `malloc_buf` and `semver` along. The part of the C API the
//! prefilter needs is ten functions, so they are declared by hand in `ffi` (`prefilter/ffi.rs`)
//! against `libhyperscan-dev` 5.4, and every `unsafe` block below says why it is sound.
//!
//! # Ids
//!
//! Identical `(literal, nocase)` pairs are compiled once: the database has one dense Hyperscan id
//! per distinct literal (a caseless literal is keyed by its ASCII-lowercased bytes, so `ABC` and
//! `abc` with nocase are one literal), and a table maps each to the sorted, deduplicated caller
//! ids attached to it. Every literal is compiled with `HS_FLAG_SINGLEMATCH`, so a scan reports each
//! `(literal, caller id)` pair at most once. A caller id attached to two different literals can
//! be reported once per literal.
//!
//! # Scratch
//!
//! Hyperscan needs a per-thread scratch area sized for every database it is used with. A
//! [`Scratch`] remembers which sets it was allocated or grown for ([`Scratch::grow_for`]);
//! [`PatternSet::scan`] refuses a scratch that was not, because Hyperscan itself checks only
//! part of the sizes and an undersized scratch would be undefined behaviour. One worker holds one
//! scratch for all its sets: grow one for every set once, then [`Scratch::try_clone`] it per
//! worker.
//!
//! # Serialized form
//!
//! [`PatternSet::serialize`] writes a small header, the id table, Hyperscan's own serialized
//! database and a CRC32 over all of it. Hyperscan refuses a database from a different Hyperscan
//! version or for a CPU lacking the features it was compiled for, and checks a CRC32C of the
//! bytecode, but that check does not cover everything: flipping bytes in its header's reserved
//! words or in the last bytes of the bytecode (the final 72 of a two-literal database) is
//! accepted, hence the outer checksum.
//! The checksums catch damage, not tampering; Hyperscan bytecode is executed as is, so only load
//! bytes that a Vigil wrote (see [`crate::cache`]).

mod ffi;

use std::any::Any;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why building, scanning or (de)serializing a pattern set failed.
#[derive(Debug, thiserror::Error)]
pub enum PrefilterError {
    /// A literal with no bytes was added; Hyperscan cannot compile it and it would match
    /// everything.
    #[error("empty literal for caller id(s) {ids:?}: a prefilter literal needs at least one byte")]
    EmptyLiteral { ids: Vec<u32> },
    /// More distinct literals or caller ids than a Hyperscan database (or the id table) can
    /// index.
    #[error("too many literals for one Hyperscan database: {count} (at most {max})", max = u32::MAX)]
    TooManyLiterals { count: usize },
    /// `hs_compile_lit_multi` rejected the set.
    #[error("Hyperscan could not compile {culprit}: {message}")]
    Compile {
        /// The offending literal, e.g. `literal #3 "ab|00 ff|" nocase (caller ids [7, 9])`, or
        /// `the literal set` when Hyperscan did not name one.
        culprit: String,
        /// Hyperscan's own message.
        message: String,
    },
    /// Any other Hyperscan call failed.
    #[error("Hyperscan {call} failed: {} ({code})", error_meaning(*.code))]
    Hyperscan { call: &'static str, code: c_int },
    /// Hyperscan's block scan takes a 32-bit length.
    #[error("cannot scan {len} bytes at once: Hyperscan's block mode is limited to 4 GiB - 1")]
    DataTooLarge { len: usize },
    /// The scratch given to [`PatternSet::scan`] was never grown for that set.
    #[error("scratch space was not allocated for this pattern set: call Scratch::grow_for(set) (or PatternSet::new_scratch) first")]
    ScratchNotForSet,
    /// [`PatternSet::deserialize`] was given bytes it cannot read.
    #[error("malformed serialized pattern set: {0}")]
    Malformed(&'static str),
}

fn error_meaning(code: c_int) -> &'static str {
    match code {
        ffi::HS_INVALID => "invalid parameter",
        ffi::HS_NOMEM => "out of memory",
        ffi::HS_SCAN_TERMINATED => "scan terminated by the callback",
        ffi::HS_COMPILER_ERROR => "pattern compiler error",
        ffi::HS_DB_VERSION_ERROR => "database built for a different Hyperscan version",
        ffi::HS_DB_PLATFORM_ERROR => "database built for a different CPU platform",
        ffi::HS_DB_MODE_ERROR => "database built for a different scanning mode",
        ffi::HS_BAD_ALIGN => "misaligned parameter",
        ffi::HS_BAD_ALLOC => "allocator returned misaligned memory",
        ffi::HS_SCRATCH_IN_USE => "scratch space already in use",
        ffi::HS_ARCH_ERROR => "CPU lacks the instructions Hyperscan requires (SSSE3)",
        ffi::HS_INSUFFICIENT_SPACE => "buffer too small",
        ffi::HS_UNKNOWN_ERROR => "unexpected internal error",
        _ => "unknown error code",
    }
}

fn check(call: &'static str, code: c_int) -> Result<(), PrefilterError> {
    if code == ffi::HS_SUCCESS {
        Ok(())
    } else {
        Err(PrefilterError::Hyperscan { call, code })
    }
}

/// The linked Hyperscan's version string, e.g. `5.4.0 2021-01-26`.
pub fn hyperscan_version() -> &'static str {
    // SAFETY: hs_version takes no arguments and returns a pointer to a NUL-terminated string
    // literal inside the library, valid and unchanged for the life of the process.
    let version = unsafe { CStr::from_ptr(ffi::hs_version()) };
    version.to_str().unwrap_or("unknown")
}

/// One distinct literal while building.
#[derive(Debug, Clone)]
struct Literal {
    bytes: Vec<u8>,
    nocase: bool,
    ids: Vec<u32>,
}

/// Collects literals and the caller ids attached to them; [`build`](Self::build) compiles them.
#[derive(Debug, Default, Clone)]
pub struct PatternSetBuilder {
    /// `(bytes, nocase)` → index into `literals`; caseless bytes are ASCII-lowercased.
    index: HashMap<(Vec<u8>, bool), usize>,
    literals: Vec<Literal>,
}

impl PatternSetBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `pattern` (raw bytes, NUL included) for caller id `id`; `nocase` matches ASCII
    /// letters in either case. Adding a literal that is already present only attaches `id`.
    pub fn add(&mut self, pattern: &[u8], nocase: bool, id: u32) {
        let bytes = if nocase {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_vec()
        };
        let next = self.literals.len();
        let slot = *self.index.entry((bytes.clone(), nocase)).or_insert(next);
        if slot == next {
            self.literals.push(Literal {
                bytes,
                nocase,
                ids: Vec::new(),
            });
        }
        self.literals[slot].ids.push(id);
    }

    /// Number of distinct literals (what the database will hold), not of `add` calls.
    pub fn len(&self) -> usize {
        self.literals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.literals.is_empty()
    }

    /// Compiles a block-mode database. An empty builder gives a set whose scans never match.
    pub fn build(mut self) -> Result<PatternSet, PrefilterError> {
        for literal in &mut self.literals {
            literal.ids.sort_unstable();
            literal.ids.dedup();
        }
        if let Some(empty) = self.literals.iter().find(|l| l.bytes.is_empty()) {
            let ids = empty.ids.clone();
            return Err(PrefilterError::EmptyLiteral { ids });
        }
        let count = self.literals.len();
        let elements =
            c_uint::try_from(count).map_err(|_| PrefilterError::TooManyLiterals { count })?;

        let mut starts = Vec::with_capacity(count + 1);
        let mut caller_ids = Vec::with_capacity(self.literals.iter().map(|l| l.ids.len()).sum());
        for literal in &self.literals {
            starts.push(caller_ids.len());
            caller_ids.extend_from_slice(&literal.ids);
        }
        starts.push(caller_ids.len());
        let starts = starts
            .into_iter()
            .map(|s| u32::try_from(s).map_err(|_| PrefilterError::TooManyLiterals { count: s }))
            .collect::<Result<Box<[u32]>, _>>()?;

        if count == 0 {
            return Ok(PatternSet::from_parts(None, starts, caller_ids.into()));
        }

        let expressions: Vec<*const c_char> = self
            .literals
            .iter()
            .map(|l| l.bytes.as_ptr().cast())
            .collect();
        let lens: Vec<usize> = self.literals.iter().map(|l| l.bytes.len()).collect();
        let flags: Vec<c_uint> = self
            .literals
            .iter()
            .map(|l| ffi::HS_FLAG_SINGLEMATCH | if l.nocase { ffi::HS_FLAG_CASELESS } else { 0 })
            .collect();
        let hs_ids: Vec<c_uint> = (0..elements).collect();

        let mut db: *mut ffi::hs_database_t = ptr::null_mut();
        let mut compile_error: *mut ffi::hs_compile_error_t = ptr::null_mut();
        // SAFETY: the four arrays each hold exactly `elements` entries; every expression pointer
        // points at `lens[i]` initialized bytes owned by `self.literals`, which outlives the call
        // (pure literals are length-delimited, so no NUL terminator is read). A NULL platform
        // means "this host". `db` and `compile_error` are valid out-pointers.
        let code = unsafe {
            ffi::hs_compile_lit_multi(
                expressions.as_ptr(),
                flags.as_ptr(),
                hs_ids.as_ptr(),
                lens.as_ptr(),
                elements,
                ffi::HS_MODE_BLOCK,
                ptr::null(),
                &mut db,
                &mut compile_error,
            )
        };
        if !compile_error.is_null() {
            // SAFETY: Hyperscan set `compile_error` to a valid hs_compile_error_t whose message is
            // a NUL-terminated string; it is read once here and freed exactly once below.
            let (message, expression) = unsafe {
                let error = &*compile_error;
                let message = if error.message.is_null() {
                    String::from("(no message)")
                } else {
                    CStr::from_ptr(error.message).to_string_lossy().into_owned()
                };
                let expression = error.expression;
                ffi::hs_free_compile_error(compile_error);
                (message, expression)
            };
            if !db.is_null() {
                // SAFETY: a database Hyperscan returned alongside an error is ours to free.
                unsafe { ffi::hs_free_database(db) };
            }
            let culprit = usize::try_from(expression)
                .ok()
                .and_then(|i| self.literals.get(i).map(|l| (i, l)))
                .map_or_else(
                    || String::from("the literal set"),
                    |(i, l)| {
                        format!(
                            "literal #{i} {}{} (caller ids {:?})",
                            escape_literal(&l.bytes),
                            if l.nocase { " nocase" } else { "" },
                            &caller_ids[starts[i] as usize..starts[i + 1] as usize],
                        )
                    },
                );
            return Err(PrefilterError::Compile { culprit, message });
        }
        check("hs_compile_lit_multi", code)?;
        let db = Database::from_raw(db, "hs_compile_lit_multi")?;
        Ok(PatternSet::from_parts(Some(db), starts, caller_ids.into()))
    }
}

/// Suricata content notation: printable ASCII as is, other bytes as `|hex|`.
fn escape_literal(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut in_hex = false;
    for &b in bytes {
        let printable = b.is_ascii_graphic() && !matches!(b, b'|' | b'"' | b'\\') || b == b' ';
        if printable {
            if in_hex {
                out.push('|');
                in_hex = false;
            }
            out.push(b as char);
        } else {
            if in_hex {
                out.push(' ');
            } else {
                out.push('|');
                in_hex = true;
            }
            out.push_str(&format!("{b:02x}"));
        }
    }
    if in_hex {
        out.push('|');
    }
    out.push('"');
    out
}

/// Owns one `hs_database_t`.
struct Database(NonNull<ffi::hs_database_t>);

impl Database {
    fn from_raw(raw: *mut ffi::hs_database_t, call: &'static str) -> Result<Self, PrefilterError> {
        NonNull::new(raw)
            .map(Database)
            .ok_or(PrefilterError::Hyperscan {
                call,
                code: ffi::HS_UNKNOWN_ERROR,
            })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: the pointer came from hs_compile_lit_multi or hs_deserialize_database, is owned
        // by this value alone, and is freed exactly once, here.
        unsafe { ffi::hs_free_database(self.0.as_ptr()) };
    }
}

// SAFETY: a compiled Hyperscan database is immutable; Hyperscan documents that one database may
// be used by any number of threads at once, each with its own scratch. Nothing here mutates it.
unsafe impl Send for Database {}
// SAFETY: as above: every use through `&Database` (hs_scan, hs_alloc_scratch,
// hs_serialize_database) only reads it.
unsafe impl Sync for Database {}

/// Distinguishes sets for [`Scratch`] bookkeeping; never reused within a process.
static NEXT_SET_UID: AtomicU64 = AtomicU64::new(1);

/// A compiled literal set. `Send + Sync`: share it between workers through an `Arc`, each worker
/// scanning with its own [`Scratch`].
pub struct PatternSet {
    /// `None` for an empty set, which Hyperscan cannot compile.
    db: Option<Database>,
    /// Hyperscan id `i` maps to `caller_ids[starts[i]..starts[i + 1]]`.
    starts: Box<[u32]>,
    caller_ids: Box<[u32]>,
    uid: u64,
}

impl fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSet")
            .field("literals", &self.len())
            .field("caller_ids", &self.caller_ids.len())
            .finish_non_exhaustive()
    }
}

/// What a scan's match callback needs; lives on `scan`'s stack for the duration of `hs_scan`.
struct ScanContext<'a, F> {
    /// Occurrences ending at or before this offset are not reported.
    min_end: u64,
    starts: &'a [u32],
    caller_ids: &'a [u32],
    on_match: &'a mut F,
    panic: Option<Box<dyn Any + Send>>,
}

/// Hyperscan's match callback: forwards every caller id of literal `id`.
unsafe extern "C" fn on_event<F: FnMut(u32)>(
    id: c_uint,
    _from: c_ulonglong,
    to: c_ulonglong,
    _flags: c_uint,
    context: *mut c_void,
) -> c_int {
    // SAFETY: `context` is the `&mut ScanContext<F>` that `PatternSet::scan` passed to hs_scan,
    // which calls back synchronously on the same thread while `scan` holds no other reference to
    // it, so this is the only live reference.
    let ctx = unsafe { &mut *context.cast::<ScanContext<'_, F>>() };
    if to <= ctx.min_end {
        return 0;
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let i = id as usize;
        // `get`: a database and table that disagree (a tampered serialized set) must not make
        // this callback panic across the C frames.
        if let (Some(&start), Some(&end)) = (ctx.starts.get(i), ctx.starts.get(i + 1)) {
            if let Some(ids) = ctx.caller_ids.get(start as usize..end as usize) {
                for &caller in ids {
                    (ctx.on_match)(caller);
                }
            }
        }
    }));
    match outcome {
        Ok(()) => 0,
        Err(payload) => {
            // Unwinding through Hyperscan's C frames is not allowed: stop the scan and let
            // `scan` resume the panic once hs_scan has returned.
            ctx.panic = Some(payload);
            1
        }
    }
}

const MAGIC: &[u8; 8] = b"VGLPFDB\0";
/// Version of [`PatternSet::serialize`]'s layout; bump on any change.
pub const SERIALIZED_FORMAT: u32 = 1;

impl PatternSet {
    fn from_parts(db: Option<Database>, starts: Box<[u32]>, caller_ids: Box<[u32]>) -> Self {
        PatternSet {
            db,
            starts,
            caller_ids,
            uid: NEXT_SET_UID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Number of distinct literals in the database.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A scratch sized for this set; one per worker thread. To serve several sets with one
    /// scratch, use [`Scratch::grow_for`].
    pub fn new_scratch(&self) -> Result<Scratch, PrefilterError> {
        let mut scratch = Scratch::new();
        scratch.grow_for(self)?;
        Ok(scratch)
    }

    /// Calls `on_match(caller_id)` for every caller id whose literal occurs in `data`. Each
    /// literal is reported at most once per scan; nothing is allocated. `scratch` must have been
    /// made by [`new_scratch`](Self::new_scratch) or grown for this set, else
    /// [`PrefilterError::ScratchNotForSet`]. A panic in `on_match` stops the scan and is resumed
    /// from here.
    pub fn scan<F: FnMut(u32)>(
        &self,
        scratch: &mut Scratch,
        data: &[u8],
        on_match: F,
    ) -> Result<(), PrefilterError> {
        self.scan_ending_after(scratch, data, 0, on_match)
    }

    /// As [`scan`](Self::scan), reporting only occurrences that end after `data[..min_end]`:
    /// a stream window's bytes before `min_end` were scanned already.
    pub fn scan_ending_after<F: FnMut(u32)>(
        &self,
        scratch: &mut Scratch,
        data: &[u8],
        min_end: usize,
        mut on_match: F,
    ) -> Result<(), PrefilterError> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let raw = match scratch.raw {
            Some(raw) if scratch.serves(self.uid) => raw,
            _ => return Err(PrefilterError::ScratchNotForSet),
        };
        let length = c_uint::try_from(data.len())
            .map_err(|_| PrefilterError::DataTooLarge { len: data.len() })?;
        let mut ctx = ScanContext {
            min_end: min_end as u64,
            starts: &self.starts,
            caller_ids: &self.caller_ids,
            on_match: &mut on_match,
            panic: None,
        };
        // SAFETY: `db` is a live block-mode database; `data` is valid for `length` bytes (an empty
        // slice's pointer is non-null and never read); `raw` is a live scratch that
        // hs_alloc_scratch sized for this database (checked through `served` above) and that the
        // `&mut Scratch` borrow keeps exclusive for the call. `on_event::<F>` matches the
        // context type, and `ctx` outlives hs_scan, which does not keep the pointer.
        let code = unsafe {
            ffi::hs_scan(
                db.0.as_ptr(),
                data.as_ptr().cast(),
                length,
                0,
                raw.as_ptr(),
                Some(on_event::<F>),
                ptr::addr_of_mut!(ctx).cast(),
            )
        };
        if let Some(payload) = ctx.panic.take() {
            panic::resume_unwind(payload);
        }
        check("hs_scan", code)
    }

    /// The set as bytes for an on-disk cache: header, id table, Hyperscan database, CRC32.
    pub fn serialize(&self) -> Result<Vec<u8>, PrefilterError> {
        let hs_bytes = match &self.db {
            None => Vec::new(),
            Some(db) => {
                let mut bytes: *mut c_char = ptr::null_mut();
                let mut length = 0usize;
                // SAFETY: `db` is a live database; `bytes` and `length` are valid out-pointers.
                let code =
                    unsafe { ffi::hs_serialize_database(db.0.as_ptr(), &mut bytes, &mut length) };
                check("hs_serialize_database", code)?;
                if bytes.is_null() {
                    return Err(PrefilterError::Hyperscan {
                        call: "hs_serialize_database",
                        code: ffi::HS_UNKNOWN_ERROR,
                    });
                }
                // SAFETY: on success Hyperscan returns a malloc'd buffer of `length` initialized
                // bytes that the caller owns; it is copied out and then freed exactly once with
                // `free`, the misc allocator's counterpart (Vigil never replaces it).
                unsafe {
                    let copy = std::slice::from_raw_parts(bytes.cast::<u8>(), length).to_vec();
                    ffi::free(bytes.cast());
                    copy
                }
            }
        };
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 12
                + 4 * (self.starts.len() + self.caller_ids.len())
                + 8
                + hs_bytes.len()
                + 4,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SERIALIZED_FORMAT.to_le_bytes());
        // Both fit in u32: checked when the set was built or read.
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.caller_ids.len() as u32).to_le_bytes());
        for v in self.starts.iter().chain(self.caller_ids.iter()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(hs_bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&hs_bytes);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Reads what [`serialize`](Self::serialize) wrote. Hyperscan refuses a database from another
    /// Hyperscan version or for a CPU with other features; the caller should then rebuild.
    pub fn deserialize(bytes: &[u8]) -> Result<PatternSet, PrefilterError> {
        use PrefilterError::Malformed;
        if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Malformed("not a Vigil prefilter database"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(Malformed("checksum mismatch (truncated or damaged)"));
        }
        let mut r = Reader(&body[MAGIC.len()..]);
        if r.u32()? != SERIALIZED_FORMAT {
            return Err(Malformed("written by a different format version"));
        }
        let literals = r.u32()? as usize;
        let id_count = r.u32()? as usize;
        let starts = (0..=literals)
            .map(|_| r.u32())
            .collect::<Result<Box<[u32]>, _>>()?;
        let caller_ids = (0..id_count)
            .map(|_| r.u32())
            .collect::<Result<Box<[u32]>, _>>()?;
        if starts[0] != 0
            || starts.windows(2).any(|w| w[0] > w[1])
            || starts[literals] as usize != id_count
        {
            return Err(Malformed("inconsistent id table"));
        }
        let hs_len = usize::try_from(r.u64()?).map_err(|_| Malformed("database too large"))?;
        let hs_bytes = r.take(hs_len).ok_or(Malformed("truncated database"))?;
        if !r.0.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        let db = match (literals, hs_len) {
            (0, 0) => None,
            (0, _) | (_, 0) => return Err(Malformed("literal count and database disagree")),
            _ => {
                let mut db: *mut ffi::hs_database_t = ptr::null_mut();
                // SAFETY: `hs_bytes` is valid for `hs_len` bytes (Hyperscan reads it with
                // unaligned loads and checks magic, version, length, platform and CRC);
                // `db` is a valid out-pointer.
                let code = unsafe {
                    ffi::hs_deserialize_database(hs_bytes.as_ptr().cast(), hs_len, &mut db)
                };
                check("hs_deserialize_database", code)?;
                Some(Database::from_raw(db, "hs_deserialize_database")?)
            }
        };
        Ok(PatternSet::from_parts(db, starts, caller_ids))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Result<u32, PrefilterError> {
        let b = self
            .take(4)
            .ok_or(PrefilterError::Malformed("truncated header or id table"))?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, PrefilterError> {
        let b = self
            .take(8)
            .ok_or(PrefilterError::Malformed("truncated header"))?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// Hyperscan scratch space for one thread, sized for one or more [`PatternSet`]s.
#[derive(Debug, Default)]
pub struct Scratch {
    /// `None` until grown for a non-empty set (empty sets need no scratch).
    raw: Option<NonNull<ffi::hs_scratch_t>>,
    /// Uids of the non-empty sets `raw` is sized for, ascending (every scan looks its set up:
    /// a linear search over ET Open's ~140 sets cost a few percent of a worker); non-empty only
    /// while `raw` is `Some`.
    served: Vec<u64>,
}

impl Scratch {
    /// A scratch that serves no set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this scratch large enough for `set` as well as every set it already serves
    /// (`hs_alloc_scratch` on the existing scratch). Cheap when it already serves `set`.
    pub fn grow_for(&mut self, set: &PatternSet) -> Result<(), PrefilterError> {
        let Some(db) = &set.db else {
            return Ok(());
        };
        let Err(at) = self.served.binary_search(&set.uid) else {
            return Ok(());
        };
        let mut raw = self.raw.map_or(ptr::null_mut(), NonNull::as_ptr);
        // SAFETY: `db` is a live database; `raw` is NULL or a scratch this value owns
        // exclusively (`&mut self`). hs_alloc_scratch either leaves it in place, or frees it and
        // stores a new one (or NULL on failure) in `raw`, which is taken over below either way.
        let code = unsafe { ffi::hs_alloc_scratch(db.0.as_ptr(), &mut raw) };
        self.raw = NonNull::new(raw);
        if self.raw.is_none() {
            self.served.clear();
        }
        check("hs_alloc_scratch", code)?;
        if self.raw.is_none() {
            return Err(PrefilterError::Hyperscan {
                call: "hs_alloc_scratch",
                code: ffi::HS_UNKNOWN_ERROR,
            });
        }
        self.served.insert(at, set.uid);
        Ok(())
    }

    fn serves(&self, uid: u64) -> bool {
        self.served.binary_search(&uid).is_ok()
    }

    /// An independent scratch serving the same sets (`hs_clone_scratch`): grow one prototype
    /// for all sets, then clone it for each worker.
    pub fn try_clone(&self) -> Result<Scratch, PrefilterError> {
        let Some(src) = self.raw else {
            return Ok(Scratch::new());
        };
        let mut dest: *mut ffi::hs_scratch_t = ptr::null_mut();
        // SAFETY: `src` is a live scratch owned by `self`; hs_clone_scratch only reads it, and
        // `&self` excludes a concurrent scan or grow on it. `dest` is a valid out-pointer.
        let code = unsafe { ffi::hs_clone_scratch(src.as_ptr(), &mut dest) };
        check("hs_clone_scratch", code)?;
        let raw = NonNull::new(dest).ok_or(PrefilterError::Hyperscan {
            call: "hs_clone_scratch",
            code: ffi::HS_UNKNOWN_ERROR,
        })?;
        Ok(Scratch {
            raw: Some(raw),
            served: self.served.clone(),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            // SAFETY: `raw` came from hs_alloc_scratch or hs_clone_scratch, is owned by this
            // value alone, is not in use (no scan can outlive the `&mut` borrow it needs), and is
            // freed exactly once, here.
            unsafe { ffi::hs_free_scratch(raw.as_ptr()) };
        }
    }
}

// SAFETY: a scratch is plain memory owned by this value; Hyperscan ties it to no thread, only to
// one concurrent user, which `&mut self` on every mutating use guarantees.
unsafe impl Send for Scratch {}
// SAFETY: the only operation through `&Scratch` is `try_clone`, and hs_clone_scratch only reads
// the source, so concurrent clones are fine.
unsafe impl Sync for Scratch {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn set(literals: &[(&[u8], bool, u32)]) -> PatternSet {
        let mut b = PatternSetBuilder::new();
        for &(p, nocase, id) in literals {
            b.add(p, nocase, id);
        }
        b.build().expect("build")
    }

    fn matches(set: &PatternSet, scratch: &mut Scratch, data: &[u8]) -> Vec<u32> {
        let mut ids = Vec::new();
        set.scan(scratch, data, |id| ids.push(id)).expect("scan");
        ids.sort_unstable();
        ids
    }

    #[test]
    fn match_and_no_match() {
        let s = set(&[(b"GET /admin", false, 1), (b"passwd", false, 2)]);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(
            matches(&s, &mut scratch, b"xx GET /admin HTTP/1.1"),
            vec![1]
        );
        assert_eq!(
            matches(&s, &mut scratch, b"/etc/passwd and GET /admin"),
            vec![1, 2]
        );
        assert_eq!(
            matches(&s, &mut scratch, b"GET /index.html"),
            Vec::<u32>::new()
        );
        // Case-sensitive literals do not match another case.
        assert_eq!(matches(&s, &mut scratch, b"PASSWD"), Vec::<u32>::new());
    }

    #[test]
    fn singlematch_reports_once() {
        let s = set(&[(b"ab", false, 7)]);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(matches(&s, &mut scratch, b"ab ab ab abab"), vec![7]);
    }

    #[test]
    fn nocase() {
        let s = set(&[(b"User-Agent", true, 3), (b"Host", false, 4)]);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(matches(&s, &mut scratch, b"user-agent: x"), vec![3]);
        assert_eq!(
            matches(&s, &mut scratch, b"USER-AGENT: x\r\nHOST: y"),
            vec![3]
        );
        assert_eq!(matches(&s, &mut scratch, b"Host: y"), vec![4]);
    }

    #[test]
    fn binary_bytes_with_nul() {
        let s = set(&[
            (b"\x00\x01\x02", false, 1),
            (b"\xff\xd8\xff", false, 2),
            (b"A\x00b", true, 3),
        ]);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(matches(&s, &mut scratch, b"junk\x00\x01\x02junk"), vec![1]);
        assert_eq!(matches(&s, &mut scratch, b"\xff\xd8\xff\xe0"), vec![2]);
        assert_eq!(matches(&s, &mut scratch, b"..a\x00B.."), vec![3]);
        // A NUL terminates nothing: the bytes before it alone do not match.
        assert_eq!(
            matches(&s, &mut scratch, b"\x00\x01\x03"),
            Vec::<u32>::new()
        );
        assert_eq!(matches(&s, &mut scratch, b"A"), Vec::<u32>::new());
    }

    #[test]
    fn duplicates_share_one_literal() {
        let mut b = PatternSetBuilder::new();
        b.add(b"evil", false, 10);
        b.add(b"evil", false, 11);
        b.add(b"EVIL", true, 12);
        b.add(b"evil", true, 13); // same caseless literal as "EVIL"
        b.add(b"evil", false, 10); // same pair again
        b.add(b"other", false, 14);
        assert_eq!(b.len(), 3);
        let s = b.build().unwrap();
        assert_eq!(s.len(), 3);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(
            matches(&s, &mut scratch, b"an evil packet"),
            vec![10, 11, 12, 13]
        );
        assert_eq!(matches(&s, &mut scratch, b"an EvIl packet"), vec![12, 13]);
        assert_eq!(matches(&s, &mut scratch, b"other"), vec![14]);
    }

    #[test]
    fn empty_data_and_empty_set() {
        let s = set(&[(b"x", false, 1)]);
        let mut scratch = s.new_scratch().unwrap();
        assert_eq!(matches(&s, &mut scratch, b""), Vec::<u32>::new());

        let empty = PatternSetBuilder::new().build().unwrap();
        assert!(empty.is_empty());
        let mut empty_scratch = empty.new_scratch().unwrap();
        assert_eq!(
            matches(&empty, &mut empty_scratch, b"anything"),
            Vec::<u32>::new()
        );
        assert_eq!(matches(&empty, &mut empty_scratch, b""), Vec::<u32>::new());
        // Any scratch will do for an empty set.
        assert_eq!(matches(&empty, &mut scratch, b"x"), Vec::<u32>::new());
        let back = PatternSet::deserialize(&empty.serialize().unwrap()).unwrap();
        assert!(back.is_empty());
        assert_eq!(matches(&back, &mut scratch, b"x"), Vec::<u32>::new());
    }

    #[test]
    fn empty_literal_is_an_error() {
        let mut b = PatternSetBuilder::new();
        b.add(b"ok", false, 1);
        b.add(b"", false, 2);
        let err = b.build().unwrap_err();
        assert!(matches!(err, PrefilterError::EmptyLiteral { ref ids } if ids == &[2]));
        assert!(err.to_string().contains("empty literal"), "{err}");
    }

    #[test]
    fn serialize_round_trip() {
        let mut b = PatternSetBuilder::new();
        for (i, word) in ["alpha", "beta", "gamma", "\u{0}\u{1}bin"]
            .iter()
            .enumerate()
        {
            b.add(word.as_bytes(), i % 2 == 0, i as u32);
            b.add(word.as_bytes(), i % 2 == 0, 100 + i as u32);
        }
        let s = b.build().unwrap();
        let bytes = s.serialize().unwrap();
        let back = PatternSet::deserialize(&bytes).unwrap();
        assert_eq!(back.len(), s.len());
        let mut scratch = s.new_scratch().unwrap();
        let mut back_scratch = back.new_scratch().unwrap();
        for data in [
            &b"ALPHA beta"[..],
            b"Beta GAMMA",
            b"\x00\x01bin",
            b"nothing",
            b"",
        ] {
            assert_eq!(
                matches(&s, &mut scratch, data),
                matches(&back, &mut back_scratch, data),
                "{data:?}"
            );
        }
        assert_eq!(matches(&back, &mut back_scratch, b"ALPHA"), vec![0, 100]);

        // A scratch grown for the original does not serve the copy.
        assert!(matches!(
            back.scan(&mut scratch, b"alpha", |_| {}),
            Err(PrefilterError::ScratchNotForSet)
        ));

        // Damage anywhere is refused, not scanned: truncation, and a flipped bit in every byte
        // (id table, Hyperscan header and bytecode, checksum).
        assert!(PatternSet::deserialize(&bytes[..bytes.len() - 1]).is_err());
        assert!(PatternSet::deserialize(&bytes[..10]).is_err());
        assert!(PatternSet::deserialize(&[]).is_err());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(PatternSet::deserialize(&flipped).is_err(), "flip at {i}");
        }
        let mut bad_magic = bytes;
        bad_magic[0] = b'X';
        assert!(matches!(
            PatternSet::deserialize(&bad_magic),
            Err(PrefilterError::Malformed(_))
        ));
    }

    #[test]
    fn one_scratch_for_two_sets() {
        let small = set(&[(b"foo", false, 1)]);
        let mut b = PatternSetBuilder::new();
        for i in 0..500u32 {
            b.add(format!("pattern-{i}-x").as_bytes(), i % 3 == 0, 1000 + i);
        }
        let big = b.build().unwrap();

        let mut scratch = small.new_scratch().unwrap();
        assert!(matches!(
            big.scan(&mut scratch, b"pattern-1-x", |_| {}),
            Err(PrefilterError::ScratchNotForSet)
        ));
        scratch.grow_for(&big).unwrap();
        scratch.grow_for(&big).unwrap(); // idempotent
        assert_eq!(matches(&small, &mut scratch, b"foo"), vec![1]);
        assert_eq!(
            matches(&big, &mut scratch, b"PATTERN-3-X pattern-4-x"),
            vec![1003, 1004]
        );

        // A clone serves both sets, from another thread, while the sets are shared.
        let clone = scratch.try_clone().unwrap();
        let (small, big) = (Arc::new(small), Arc::new(big));
        let worker = {
            let (small, big) = (Arc::clone(&small), Arc::clone(&big));
            std::thread::spawn(move || {
                let mut clone = clone;
                (
                    matches(&small, &mut clone, b"xfoox"),
                    matches(&big, &mut clone, b"pattern-499-x"),
                )
            })
        };
        assert_eq!(worker.join().unwrap(), (vec![1], vec![1499]));
        assert_eq!(matches(&big, &mut scratch, b"pattern-2-x"), vec![1002]);
    }

    #[test]
    fn panic_in_callback_propagates() {
        let s = set(&[(b"boom", false, 1)]);
        let mut scratch = s.new_scratch().unwrap();
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            s.scan(&mut scratch, b"boom", |_| panic!("callback panic"))
                .ok();
        }));
        assert!(result.is_err());
        // The scratch is usable again afterwards.
        assert_eq!(matches(&s, &mut scratch, b"boom"), vec![1]);
    }

    #[test]
    fn escape_for_messages() {
        assert_eq!(escape_literal(b"ab\x00\xffc|"), "\"ab|00 ff|c|7c|\"");
        assert_eq!(escape_literal(b"a b"), "\"a b\"");
    }

    #[test]
    fn version_is_known() {
        assert!(
            hyperscan_version().starts_with('5'),
            "{}",
            hyperscan_version()
        );
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn thread_safety_markers() {
        assert_send_sync::<PatternSet>();
        assert_send_sync::<Scratch>();
    }

    /// Compile time for 20,000 random 4–20 byte literals. Run by hand:
    /// `cargo test -p vigil-signatures --release -- --ignored build_20k --nocapture`.
    #[test]
    #[ignore]
    fn build_20k() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut b = PatternSetBuilder::new();
        for id in 0..20_000u32 {
            let len = 4 + (next() % 17) as usize;
            let lit: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            b.add(&lit, next() % 4 == 0, id);
        }
        let start = std::time::Instant::now();
        let s = b.build().unwrap();
        let built = start.elapsed();
        let bytes = s.serialize().unwrap();
        let start = std::time::Instant::now();
        let back = PatternSet::deserialize(&bytes).unwrap();
        let loaded = start.elapsed();
        let mut scratch = back.new_scratch().unwrap();
        let data: Vec<u8> = (0..1 << 20).map(|_| next() as u8).collect();
        let start = std::time::Instant::now();
        let mut hits = 0usize;
        back.scan(&mut scratch, &data, |_| hits += 1).unwrap();
        let scanned = start.elapsed();
        println!(
            "build_20k: {} literals compiled in {built:?}; serialized {} bytes, loaded in {loaded:?}; \
             1 MiB random scan {scanned:?} ({hits} hits)",
            s.len(),
            bytes.len()
        );
    }
}
