//! Hand-written bindings for the slice of the Hyperscan 5.x C API that the prefilter uses.
//!
//! Declarations follow `hs_common.h`, `hs_compile.h` and `hs_runtime.h` of Hyperscan 5.4
//! (Debian's `libhyperscan-dev`, pkg-config `libhs`). `#[link(name = "hs")]` links the shared
//! `libhs.so` from the default library path; no build script is needed for the system
//! package. Everything here is raw FFI: the safe wrappers and the `SAFETY` arguments live in
//! `prefilter.rs`.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// `hs_error_t`: `HS_SUCCESS` or one of the negative `HS_*` codes below.
pub type hs_error_t = c_int;

pub const HS_SUCCESS: hs_error_t = 0;
pub const HS_INVALID: hs_error_t = -1;
pub const HS_NOMEM: hs_error_t = -2;
pub const HS_SCAN_TERMINATED: hs_error_t = -3;
pub const HS_COMPILER_ERROR: hs_error_t = -4;
pub const HS_DB_VERSION_ERROR: hs_error_t = -5;
pub const HS_DB_PLATFORM_ERROR: hs_error_t = -6;
pub const HS_DB_MODE_ERROR: hs_error_t = -7;
pub const HS_BAD_ALIGN: hs_error_t = -8;
pub const HS_BAD_ALLOC: hs_error_t = -9;
pub const HS_SCRATCH_IN_USE: hs_error_t = -10;
pub const HS_ARCH_ERROR: hs_error_t = -11;
pub const HS_INSUFFICIENT_SPACE: hs_error_t = -12;
pub const HS_UNKNOWN_ERROR: hs_error_t = -13;

/// Match ASCII letters regardless of case.
pub const HS_FLAG_CASELESS: c_uint = 1;
/// Report at most one match per pattern per scan.
pub const HS_FLAG_SINGLEMATCH: c_uint = 8;

/// Block (non-streaming) mode database.
pub const HS_MODE_BLOCK: c_uint = 1;

/// Opaque compiled database (`hs_database_t`).
#[repr(C)]
pub struct hs_database_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque scratch space (`hs_scratch_t`).
#[repr(C)]
pub struct hs_scratch_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque platform description (`hs_platform_info_t`); the prefilter always passes NULL
/// (compile for the host).
#[repr(C)]
pub struct hs_platform_info_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `hs_compile_error_t`, freed with [`hs_free_compile_error`].
#[repr(C)]
pub struct hs_compile_error_t {
    /// NUL-terminated, human-readable message.
    pub message: *mut c_char,
    /// Index of the offending expression, or negative when the error is not tied to one.
    pub expression: c_int,
}

/// `match_event_handler`: return non-zero to stop scanning.
pub type match_event_handler = Option<
    unsafe extern "C" fn(
        id: c_uint,
        from: c_ulonglong,
        to: c_ulonglong,
        flags: c_uint,
        context: *mut c_void,
    ) -> c_int,
>;

#[link(name = "hs")]
extern "C" {
    pub fn hs_version() -> *const c_char;

    pub fn hs_compile_lit_multi(
        expressions: *const *const c_char,
        flags: *const c_uint,
        ids: *const c_uint,
        lens: *const usize,
        elements: c_uint,
        mode: c_uint,
        platform: *const hs_platform_info_t,
        db: *mut *mut hs_database_t,
        error: *mut *mut hs_compile_error_t,
    ) -> hs_error_t;

    pub fn hs_free_compile_error(error: *mut hs_compile_error_t) -> hs_error_t;

    pub fn hs_free_database(db: *mut hs_database_t) -> hs_error_t;

    pub fn hs_serialize_database(
        db: *const hs_database_t,
        bytes: *mut *mut c_char,
        length: *mut usize,
    ) -> hs_error_t;

    pub fn hs_deserialize_database(
        bytes: *const c_char,
        length: usize,
        db: *mut *mut hs_database_t,
    ) -> hs_error_t;

    pub fn hs_alloc_scratch(
        db: *const hs_database_t,
        scratch: *mut *mut hs_scratch_t,
    ) -> hs_error_t;

    pub fn hs_clone_scratch(src: *const hs_scratch_t, dest: *mut *mut hs_scratch_t) -> hs_error_t;

    pub fn hs_free_scratch(scratch: *mut hs_scratch_t) -> hs_error_t;

    pub fn hs_scan(
        db: *const hs_database_t,
        data: *const c_char,
        length: c_uint,
        flags: c_uint,
        scratch: *mut hs_scratch_t,
        on_event: match_event_handler,
        context: *mut c_void,
    ) -> hs_error_t;
}

extern "C" {
    /// The C library's `free`: `hs_serialize_database` allocates its output with Hyperscan's
    /// "misc" allocator, which is `malloc` unless `hs_set_misc_allocator` was called (Vigil
    /// never calls it).
    pub fn free(ptr: *mut c_void);
}
