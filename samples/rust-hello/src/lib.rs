//! rust-hello: a taskhost plugin written in Rust against the C ABI (plugin-sdk/include/taskhost/plugin.h)
//! with no external crates: the structs it needs are mirrored by hand with `#[repr(C)]`, and the
//! manifest is a byte string placed in the `.taskhost_manifest` section.
//!
//!   rust.hello  {"name":"Ada"} -> "Hello from Rust, Ada!"   ({} greets "world")
//!
//! The task ends inside on_start, so there is no thread and no per-task state. Every exported function
//! runs its body under `catch_unwind`: a panic becomes TH_FAILED with its message, never an unwind
//! into the host.

#![deny(warnings)]

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---- the C ABI, mirrored (ABI 1.1) -----------------------------------------------------------------

const ABI_MAJOR: u32 = 1;
const ABI_MINOR: u32 = 1;

type ThStatus = i32;
const TH_OK: ThStatus = 0;
const TH_INVALID_ARGUMENT: ThStatus = 2;
const TH_FAILED: ThStatus = 3;
const TH_STATE_SUCCEEDED: i32 = 3;
const TH_ENCODING_JSON: i32 = 0;

#[repr(C)]
#[derive(Clone, Copy)]
struct ThBytes {
    data: *const u8,
    size: usize,
}

#[repr(C)]
struct ThErrorBuf {
    struct_size: u32,
    message_host_ptr: *mut c_char,
    capacity: usize,
}

#[repr(C)]
struct ThResult {
    struct_size: u32,
    state: i32,
    output: ThBytes,
    error_code: i32,
    error_message: *const c_char,
}

type Ctx = *mut c_void;
type StrPtr = *const c_char;

#[repr(C)]
struct ThHostApi {
    struct_size: u32,
    abi_major: u32,
    abi_minor: u32,
    context: Ctx,
    set_state: Option<unsafe extern "C" fn(Ctx, u64, i32, StrPtr) -> ThStatus>,
    progress: Option<unsafe extern "C" fn(Ctx, u64, f64, f64, StrPtr, StrPtr) -> ThStatus>,
    output: Option<unsafe extern "C" fn(Ctx, u64, StrPtr, ThBytes) -> ThStatus>,
    post: Option<unsafe extern "C" fn(Ctx, u64, StrPtr, ThBytes) -> ThStatus>,
    request_input: Option<unsafe extern "C" fn(Ctx, u64, StrPtr, StrPtr, StrPtr) -> ThStatus>,
    append_artifact: Option<unsafe extern "C" fn(Ctx, u64, StrPtr, StrPtr, StrPtr) -> ThStatus>,
    checkpoint: Option<unsafe extern "C" fn(Ctx, u64, ThBytes) -> ThStatus>,
    heartbeat: Option<unsafe extern "C" fn(Ctx, u64, f64, StrPtr) -> ThStatus>,
    complete: Option<unsafe extern "C" fn(Ctx, u64, *const ThResult) -> ThStatus>,
    log: Option<unsafe extern "C" fn(Ctx, u64, i32, StrPtr)>,
}

#[repr(C)]
struct ThTaskInfo {
    struct_size: u32,
    task: u64,
    task_id: StrPtr,
    kind: StrPtr,
    attempt: u32,
    input: ThBytes,
    reattach: i32,
    checkpoint: ThBytes,
}

type Exec = *mut c_void;
type TaskFn = unsafe extern "C" fn(Exec, *const ThTaskInfo, *mut ThErrorBuf) -> ThStatus;

#[repr(C)]
struct ThKindDescriptor {
    struct_size: u32,
    kind: StrPtr,
    encoding: i32,
    on_create_executor: Option<unsafe extern "C" fn(*const ThHostApi, *mut Exec, *mut ThErrorBuf) -> ThStatus>,
    on_destroy_executor: Option<unsafe extern "C" fn(Exec)>,
    on_start: Option<TaskFn>,
    on_cancel: Option<TaskFn>,
    on_deliver: Option<unsafe extern "C" fn(Exec, *const ThTaskInfo, *const c_void, *mut ThErrorBuf) -> ThStatus>,
    on_reconcile: Option<TaskFn>,
    on_release: Option<unsafe extern "C" fn(Exec, *const ThTaskInfo)>,
    on_can_reattach: Option<unsafe extern "C" fn(Exec, *const ThTaskInfo) -> i32>,
    on_detach: Option<TaskFn>,
    description: StrPtr,
    input_schema_json: StrPtr,
    output_schema_json: StrPtr,
}

#[repr(C)]
struct ThPluginDescriptor {
    struct_size: u32,
    abi_major: u32,
    abi_minor: u32,
    name: StrPtr,
    version: StrPtr,
    kind_count: usize,
    kinds: *const *const ThKindDescriptor,
}

// The mirror must have plugin.h's layout: sizes as the C compiler gives them on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<ThBytes>() == 16);
    assert!(std::mem::size_of::<ThErrorBuf>() == 24);
    assert!(std::mem::size_of::<ThResult>() == 40);
    assert!(std::mem::size_of::<ThHostApi>() == 104);
    assert!(std::mem::size_of::<ThTaskInfo>() == 80);
    assert!(std::mem::size_of::<ThKindDescriptor>() == 120);
    assert!(std::mem::size_of::<ThPluginDescriptor>() == 48);
};

// ---- the manifest: readable by the host before it runs any code ------------------------------------

const MANIFEST_TEXT: &[u8] =
    b"taskhost-manifest 1\nabi=1.1\nname=rust-hello\nversion=1.0.0\nkinds=rust.hello\n\0";

const fn manifest_bytes<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = text[i];
        i += 1;
    }
    out
}

#[used]
#[link_section = ".taskhost_manifest"]
static TASKHOST_MANIFEST: [u8; MANIFEST_TEXT.len()] = manifest_bytes(MANIFEST_TEXT);

// ---- the executor -----------------------------------------------------------------------------------

struct Executor {
    host: *const ThHostApi, // host-owned; valid until on_destroy_executor returns
}

/// Copies `text` into the host's error buffer (truncated, NUL-terminated) and returns `status`.
unsafe fn set_error(err: *mut ThErrorBuf, status: ThStatus, text: &str) -> ThStatus {
    if err.is_null() {
        return status;
    }
    let err = &*err;
    if err.message_host_ptr.is_null() || err.capacity == 0 {
        return status;
    }
    let n = text.len().min(err.capacity - 1);
    std::ptr::copy_nonoverlapping(text.as_ptr(), err.message_host_ptr as *mut u8, n);
    *err.message_host_ptr.add(n) = 0;
    status
}

/// Runs `body`; a panic becomes TH_FAILED with its message.
unsafe fn guarded(err: *mut ThErrorBuf, body: impl FnOnce() -> Result<(), (ThStatus, String)>) -> ThStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TH_OK,
        Ok(Err((status, text))) => set_error(err, status, &text),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_error(err, TH_FAILED, &format!("panic: {text}"))
        }
    }
}

unsafe fn bytes<'a>(b: ThBytes) -> &'a [u8] {
    if b.data.is_null() || b.size == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(b.data, b.size)
    }
}

/// The string value of member `key` of a flat JSON object (escapes kept as written), if present.
fn json_string_member<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let rest = &json[json.find(&quoted)? + quoted.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(&rest[..i]),
            _ => escaped = false,
        }
    }
    None
}

fn greeting(input: &[u8]) -> Result<String, (ThStatus, String)> {
    let text = std::str::from_utf8(input).map_err(|_| (TH_INVALID_ARGUMENT, "input is not UTF-8".to_string()))?;
    if !text.trim_start().starts_with('{') {
        return Err((TH_INVALID_ARGUMENT, "input must be a JSON object".to_string()));
    }
    let name = json_string_member(text, "name").unwrap_or("world");
    Ok(format!("\"Hello from Rust, {name}!\""))
}

unsafe extern "C" fn create_executor(host: *const ThHostApi, out: *mut Exec, err: *mut ThErrorBuf) -> ThStatus {
    guarded(err, || {
        if out.is_null() || host.is_null() {
            return Err((TH_INVALID_ARGUMENT, "NULL host or out".to_string()));
        }
        *out = Box::into_raw(Box::new(Executor { host })) as Exec;
        Ok(())
    })
}

unsafe extern "C" fn destroy_executor(executor: Exec) {
    if !executor.is_null() {
        drop(Box::from_raw(executor as *mut Executor));
    }
}

unsafe extern "C" fn start(executor: Exec, info: *const ThTaskInfo, err: *mut ThErrorBuf) -> ThStatus {
    guarded(err, || {
        let executor = &*(executor as *const Executor);
        let info = &*info;
        let output = greeting(bytes(info.input))?;
        let host = &*executor.host;
        let result = ThResult {
            struct_size: std::mem::size_of::<ThResult>() as u32,
            state: TH_STATE_SUCCEEDED,
            output: ThBytes { data: output.as_ptr(), size: output.len() },
            error_code: 0,
            error_message: std::ptr::null(),
        };
        let complete = host.complete.ok_or((TH_FAILED, "host has no complete()".to_string()))?;
        complete(host.context, info.task, &result);
        Ok(())
    })
}

/// Nothing runs after start returns, so there is nothing to cancel.
unsafe extern "C" fn cancel(_executor: Exec, _info: *const ThTaskInfo, _err: *mut ThErrorBuf) -> ThStatus {
    TH_OK
}

// ---- descriptors and the entry point -----------------------------------------------------------------

/// Lets the descriptors (plain data holding pointers to other statics) live in statics.
#[repr(transparent)]
struct Shared<T>(T);
unsafe impl<T> Sync for Shared<T> {}

static KIND: Shared<ThKindDescriptor> = Shared(ThKindDescriptor {
    struct_size: std::mem::size_of::<ThKindDescriptor>() as u32,
    kind: c"rust.hello".as_ptr(),
    encoding: TH_ENCODING_JSON,
    on_create_executor: Some(create_executor),
    on_destroy_executor: Some(destroy_executor),
    on_start: Some(start),
    on_cancel: Some(cancel),
    on_deliver: None,
    on_reconcile: None,
    on_release: None,
    on_can_reattach: None,
    on_detach: None,
    description: c"Greets {\"name\": ...} from Rust".as_ptr(),
    input_schema_json: c"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}".as_ptr(),
    output_schema_json: c"{\"type\":\"string\"}".as_ptr(),
});

static KINDS: Shared<[*const ThKindDescriptor; 1]> = Shared([&KIND.0 as *const ThKindDescriptor]);

static PLUGIN: Shared<ThPluginDescriptor> = Shared(ThPluginDescriptor {
    struct_size: std::mem::size_of::<ThPluginDescriptor>() as u32,
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    name: c"rust-hello".as_ptr(),
    version: c"1.0.0".as_ptr(),
    kind_count: 1,
    kinds: &KINDS.0 as *const [*const ThKindDescriptor; 1] as *const *const ThKindDescriptor,
});

/// The one exported symbol.
#[no_mangle]
pub extern "C" fn taskhost_plugin_entry() -> *const c_void {
    // Reading the manifest keeps it reachable, so the linker's section GC can never drop it.
    let _ = unsafe { std::ptr::read_volatile(TASKHOST_MANIFEST.as_ptr()) };
    &PLUGIN.0 as *const ThPluginDescriptor as *const c_void
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn manifest_matches_descriptor() {
        let text = CStr::from_bytes_with_nul(MANIFEST_TEXT).unwrap().to_str().unwrap();
        assert!(text.contains("name=rust-hello\n") && text.contains("kinds=rust.hello\n"));
        assert!(text.contains(&format!("abi={ABI_MAJOR}.{ABI_MINOR}\n")));
    }

    #[test]
    fn greeting_reads_name_and_defaults_to_world() {
        assert_eq!(greeting(br#"{"name":"Ada"}"#).unwrap(), "\"Hello from Rust, Ada!\"");
        assert_eq!(greeting(b"{}").unwrap(), "\"Hello from Rust, world!\"");
        assert_eq!(greeting(b"[1]").unwrap_err().0, TH_INVALID_ARGUMENT);
    }
}
