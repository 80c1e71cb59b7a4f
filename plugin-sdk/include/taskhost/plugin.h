/*
 * taskhost plugin ABI — the whole contract between the taskhost host and a plugin `.so`.
 *
 * C99, no dependencies beyond <stdint.h>/<stddef.h>: a plugin may be written in C, in C++ with any
 * compiler and standard library, or in Rust (repr(C)). No C++ type, no exception and no allocation owned
 * by the other side ever crosses this boundary.
 *
 * Naming says direction and ownership (after Envoy's dynamic-modules ABI):
 *   th_plugin_on_*     a function the PLUGIN implements and the host calls.
 *   th_host_*          a function the HOST implements and the plugin calls.
 *   *_host_ptr         memory the host owns; valid only for the duration of the call that passed it.
 *   *_plugin_ptr       memory the plugin owns; the host never frees or writes it.
 *
 * Versioning (docs/abi.md has the full policy):
 *   - TASKHOST_ABI_MAJOR changes when anything existing changes meaning (layout, threading, ownership).
 *   - TASKHOST_ABI_MINOR changes when fields or functions are APPENDED. A host accepts a plugin with the
 *     same major and plugin minor <= host minor.
 *   - Every struct that crosses starts with `struct_size`. Fields are only appended, never reordered or
 *     removed. Each side checks a field lies inside the other side's `struct_size` before reading it
 *     (see TH_HAS_FIELD).
 *
 * Threading (enforced by the host, relied on by the plugin):
 *   - Calls for ONE task (start, deliver, cancel, reconcile, detach, release) never overlap and arrive in
 *     order: the host serializes them on that task's strand.
 *   - Calls for DIFFERENT tasks of the same executor may run concurrently on different host threads, so
 *     shared executor state needs the plugin's own locking.
 *   - th_host_api functions (the sink) may be called from ANY thread at ANY time, including from inside a
 *     th_plugin_on_* call. They never block on plugin progress and never call back into the plugin
 *     synchronously. A call for a task that has ended, or from an attempt that was superseded, returns an
 *     error status; it is never a crash.
 *   - A plugin must not call the sink after its on_destroy_executor returned, and on_destroy_executor must
 *     join every thread the plugin started for that executor: the host unmaps the code afterwards.
 */
#ifndef TASKHOST_PLUGIN_H
#define TASKHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASKHOST_ABI_MAJOR 1
#define TASKHOST_ABI_MINOR 1

/* The one symbol every plugin exports (see TASKHOST_PLUGIN_ENTRY below). */
#define TASKHOST_ENTRY_SYMBOL "taskhost_plugin_entry"
/* The ELF section holding the manifest the host reads before running any plugin code. */
#define TASKHOST_MANIFEST_SECTION ".taskhost_manifest"

/* True when `ptr` (a struct starting with struct_size) was built with `field` present. */
#define TH_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* ---------------------------------------------------------------------------------------------------
 * Status codes: every call returns one. Fixed width so the value crosses any compiler unchanged.
 * ------------------------------------------------------------------------------------------------- */
typedef int32_t th_status;
#define TH_OK 0
#define TH_UNSUPPORTED 1       /* the operation is not implemented: a distinct answer, not a failure */
#define TH_INVALID_ARGUMENT 2  /* the caller passed something malformed; the error text says what */
#define TH_FAILED 3            /* the operation was attempted and failed; the error text says why */
#define TH_TASK_ENDED 4        /* sink: the task already reached a terminal state; the write was dropped */
#define TH_STALE_ATTEMPT 5     /* sink: the task ref belongs to a superseded attempt; the write was dropped */
#define TH_UNKNOWN_TASK 6      /* sink: the task ref was never issued by this host, or names a task that
                                  another plugin (or another load of this file) runs; nothing was written */

/* ---------------------------------------------------------------------------------------------------
 * Task states (protocol.md §2). Terminal states are final.
 * ------------------------------------------------------------------------------------------------- */
typedef int32_t th_task_state;
#define TH_STATE_PENDING 0
#define TH_STATE_RUNNING 1
#define TH_STATE_WAITING_INPUT 2
#define TH_STATE_SUCCEEDED 3
#define TH_STATE_FAILED 4
#define TH_STATE_CANCELED 5

/* Error codes of a failed completion; the numbers are those of the wire protocol (protocol.md §1). */
typedef int32_t th_error_code;
#define TH_ERROR_TIMEOUT 1
#define TH_ERROR_INVALID_INPUT 2
#define TH_ERROR_COMPONENT_FAILED 3
#define TH_ERROR_CANCELLED 4
#define TH_ERROR_UNREACHABLE 5
#define TH_ERROR_COMPONENT_NOT_FOUND 6
#define TH_ERROR_RESOURCE_UNAVAILABLE 7
#define TH_ERROR_WORKER_ERROR 10

/* How a kind wants its payloads (task input, steering data, output, outbound data) encoded. */
typedef int32_t th_encoding;
#define TH_ENCODING_JSON 0     /* UTF-8 JSON text (protobuf's JSON mapping of google.protobuf.Value) */
#define TH_ENCODING_PROTOBUF 1 /* serialized google.protobuf.Value */

/* Log levels for th_host_api.log. */
#define TH_LOG_DEBUG 0
#define TH_LOG_INFO 1
#define TH_LOG_WARN 2
#define TH_LOG_ERROR 3

/* A byte span. Who owns `data` is said wherever a span crosses. `data` may be NULL only when `size` is 0
 * (the sink refuses NULL with a size: TH_INVALID_ARGUMENT). */
typedef struct th_bytes {
  const uint8_t* data;
  size_t size;
} th_bytes;

/* ---------------------------------------------------------------------------------------------------
 * Error detail. Every th_plugin_on_* call that can fail receives a host-owned buffer for its error text.
 *
 * Why not a per-instance last_error string (Falco's way)? One executor instance serves many tasks at
 * once, so an instance-wide "last error" races between tasks. A call-scoped buffer gives the same detail
 * with no shared state and no ownership transfer: the host owns it, the plugin writes at most `capacity`
 * bytes (th_error_set truncates and NUL-terminates), the host copies it when the call returns.
 * ------------------------------------------------------------------------------------------------- */
typedef struct th_error_buf {
  uint32_t struct_size;
  char* message_host_ptr; /* host-owned, valid for the call; starts as "" */
  size_t capacity;        /* bytes available at message_host_ptr, including the NUL */
} th_error_buf;

/* Copies `text` into `err` (truncating) and returns `status`, so a plugin can write
 * `return th_error_set(err, TH_FAILED, "disk full");`. NULL err or text is allowed. */
static inline th_status th_error_set(th_error_buf* err, th_status status, const char* text) {
  size_t i = 0;
  if (err == NULL || err->message_host_ptr == NULL || err->capacity == 0) return status;
  if (text != NULL) {
    for (; text[i] != '\0' && i + 1 < err->capacity; ++i) err->message_host_ptr[i] = text[i];
  }
  err->message_host_ptr[i] = '\0';
  return status;
}

/* ---------------------------------------------------------------------------------------------------
 * The host API (the sink and friends): functions the HOST implements. The table is host-owned, handed to
 * every executor at creation, and valid until that executor's on_destroy_executor returns.
 *
 * `task` is the task ref from th_task_info: an opaque token for one attempt of one task, never a pointer.
 * The host looks it up on every call, so a ref outliving its task is answered TH_TASK_ENDED or
 * TH_STALE_ATTEMPT instead of being dereferenced. Every function may be called from any thread.
 * Strings are NUL-terminated UTF-8 (bytes that are not well-formed UTF-8 are kept as U+FFFD); all
 * pointers are plugin-owned and need only stay valid for the call (the host copies what it keeps).
 * Payload spans use the kind's declared encoding.
 * ------------------------------------------------------------------------------------------------- */
typedef struct th_host_context th_host_context; /* opaque host state; pass back unchanged */
typedef uint64_t th_task_ref;

/* Structured result of a terminal state. */
typedef struct th_result {
  uint32_t struct_size;
  th_task_state state;        /* TH_STATE_SUCCEEDED, TH_STATE_FAILED or TH_STATE_CANCELED */
  th_bytes output;            /* succeeded: the output value (kind's encoding); may be empty */
  th_error_code error_code;   /* failed: one of TH_ERROR_*; 0 means TH_ERROR_COMPONENT_FAILED */
  const char* error_message;  /* failed/canceled: human-readable reason; may be NULL */
} th_result;

typedef struct th_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  th_host_context* context;

  /* Sizes: a text argument (detail, label, prompt, message, ...) past 64 KiB is cut, with a note saying
   * so. A byte payload (an output delta, a message's data, a checkpoint, a completion's output) over the
   * host's limit (max_plugin_payload_bytes, 8 MiB unless the operator sets it) is refused with
   * TH_INVALID_ARGUMENT and logged; a completion's output over it ends the task FAILED, error kind
   * "too_large". */

  /* Non-terminal state change with a short detail (TH_STATE_RUNNING or TH_STATE_WAITING_INPUT).
   * Terminal states go through `complete`. TH_STATE_RUNNING while a question (request_input) is
   * pending withdraws it: an answer sent afterwards is refused. */
  th_status (*set_state)(th_host_context* ctx, th_task_ref task, th_task_state state, const char* detail);

  /* Progress {current, total, unit, label}; total <= 0 means unknown. unit/label may be NULL.
   * current and total must be finite (not NaN or infinite): TH_INVALID_ARGUMENT otherwise. */
  th_status (*progress)(th_host_context* ctx, th_task_ref task, double current, double total,
                        const char* unit, const char* label);

  /* Streamed output: an ephemeral delta on a named stream ("stdout", "log", ...). Not durable. */
  th_status (*output)(th_host_context* ctx, th_task_ref task, const char* stream, th_bytes delta);

  /* An outbound message to whoever drives the task: text and/or data (kind's encoding). */
  th_status (*post)(th_host_context* ctx, th_task_ref task, const char* text, th_bytes data);

  /* Ask for input. Moves the task to waiting_input; a steering message with in_reply_to ==
   * request_id moves it back to running. expected_schema_json may be NULL or empty; otherwise it
   * must be JSON (TH_INVALID_ARGUMENT, nothing asked). A kind without on_deliver can receive no
   * answer: TH_UNSUPPORTED, and the task stays running. */
  th_status (*request_input)(th_host_context* ctx, th_task_ref task, const char* request_id,
                             const char* prompt, const char* expected_schema_json);

  /* Record an artifact {name, media type, path or URL}. */
  th_status (*append_artifact)(th_host_context* ctx, th_task_ref task, const char* name,
                               const char* media_type, const char* uri);

  /* Store an opaque checkpoint, handed back to on_start when the task is re-attached. Replaces the
   * previous one. Bytes are copied. */
  th_status (*checkpoint)(th_host_context* ctx, th_task_ref task, th_bytes state);

  /* A liveness beat with optional progress fraction (0..1, negative = none; NaN or above 1:
   * TH_INVALID_ARGUMENT, nothing recorded) and status message.
   * The host already heartbeats every running task on its own; this adds progress to the next beat. */
  th_status (*heartbeat)(th_host_context* ctx, th_task_ref task, double fraction, const char* status_message);

  /* End the task: succeeded with an output, failed with an error, or canceled. First one wins.
   * An output the host cannot read (malformed in the kind's encoding, or nested deeper than 20 levels
   * of arrays and objects) still ends the task: FAILED, error kind "invalid_output", and the call
   * answers TH_INVALID_ARGUMENT to say the output was not taken. */
  th_status (*complete)(th_host_context* ctx, th_task_ref task, const th_result* result);

  /* Write to the host's log, tagged with the plugin. Any thread. `task` may be 0 for none. */
  void (*log)(th_host_context* ctx, th_task_ref task, int32_t level, const char* message);
} th_host_api;

/* ---------------------------------------------------------------------------------------------------
 * What the host tells the plugin about a task. Host-owned, valid only for the call that passed it: copy
 * whatever must outlive the call. Strings are NUL-terminated.
 * ------------------------------------------------------------------------------------------------- */
typedef struct th_task_info {
  uint32_t struct_size;
  th_task_ref task;            /* token for sink calls of this attempt */
  const char* task_id;         /* the task's id; the same on every retry and re-attach */
  const char* kind;
  uint32_t attempt;            /* starts at 1, only grows: use for idempotency */
  th_bytes input;              /* the assignment's input (kind's encoding) */
  int32_t reattach;            /* on_start: nonzero when resuming after worker loss or a reload */
  th_bytes checkpoint;         /* on_start with reattach: the last checkpoint; may be empty */
} th_task_info;

/* A steering message or an answer to an input request. Host-owned, valid for the call. */
typedef struct th_message {
  uint32_t struct_size;
  const char* message_id;
  const char* text;            /* may be "" */
  th_bytes data;               /* may be empty (kind's encoding) */
  const char* in_reply_to;     /* request id of request_input this answers, or "" */
} th_message;

/* ---------------------------------------------------------------------------------------------------
 * A task kind: what the plugin implements for it. Plugin-owned and static (lives as long as the library
 * is loaded). Required functions must be non-NULL; each optional group is all-or-nothing, and a
 * half-provided group makes the host refuse the kind with a reason.
 * ------------------------------------------------------------------------------------------------- */
typedef struct th_executor th_executor; /* plugin-defined executor instance (plugin-owned) */

typedef struct th_kind_descriptor {
  uint32_t struct_size;
  const char* kind;            /* free-form name, matched exactly; unique across loaded plugins */
  th_encoding encoding;        /* how this kind wants payloads (TH_ENCODING_*) */

  /* --- lifecycle group (required) ------------------------------------------------------------- */
  /* Factory: create this kind's executor. Called once per loaded generation on a host thread, before
   * any task call. `host` stays valid until on_destroy_executor returns. On failure return a status
   * other than TH_OK and leave *out NULL; the host refuses the kind and shows the error text. */
  th_status (*on_create_executor)(const th_host_api* host, th_executor** out, th_error_buf* err);
  /* Destroy an executor created above. Called once, after every task call on it returned and every task
   * was released. Must join all threads the executor started; the code is unmapped afterwards. */
  void (*on_destroy_executor)(th_executor* self);

  /* --- task group (required) ------------------------------------------------------------------ */
  /* Begin a task, or resume one when info->reattach is set (then info->checkpoint carries the last
   * checkpoint and info->attempt was bumped). Should return promptly: do long work on the plugin's own
   * threads and report through the host API. TH_OK = accepted (running); anything else fails the task. */
  th_status (*on_start)(th_executor* self, const th_task_info* info, th_error_buf* err);
  /* Cooperative cancel: wind down and complete (as canceled, or succeeded/failed if it finished first).
   * The host enforces a deadline after which it ends the task canceled and calls on_release. */
  th_status (*on_cancel)(th_executor* self, const th_task_info* info, th_error_buf* err);

  /* --- optional singles (NULL = default) ------------------------------------------------------ */
  /* Steering or an input answer. NULL answers TH_UNSUPPORTED to the sender. */
  th_status (*on_deliver)(th_executor* self, const th_task_info* info, const th_message* message,
                          th_error_buf* err);
  /* Refresh state of a polled task (e.g. a remote job). NULL = no-op success. */
  th_status (*on_reconcile)(th_executor* self, const th_task_info* info, th_error_buf* err);
  /* The task is over for this executor (terminal, or the cancel deadline passed): free its state and
   * stop any work for it. No sink call for this ref is accepted afterwards. NULL = nothing to free. */
  void (*on_release)(th_executor* self, const th_task_info* info);

  /* --- re-attach group (optional, both or neither) --------------------------------------------- */
  /* Whether this task can be resumed by on_start(reattach) on another worker or generation. */
  int32_t (*on_can_reattach)(th_executor* self, const th_task_info* info);
  /* Let go of a running task WITHOUT ending it, so a newer generation can re-attach it: stop work,
   * write a final checkpoint, and return. The task is then released from this executor. */
  th_status (*on_detach)(th_executor* self, const th_task_info* info, th_error_buf* err);

  /* --- appended in ABI 1.1: discovery metadata (all optional, may be NULL) ---------------------- */
  const char* description;
  const char* input_schema_json;  /* JSON Schema as a JSON string; not JSON: the plugin is refused */
  const char* output_schema_json;
} th_kind_descriptor;

/* The plugin itself. Plugin-owned and static. */
typedef struct th_plugin_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;          /* TASKHOST_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;          /* TASKHOST_ABI_MINOR the plugin was built with */
  const char* name;            /* plugin name, e.g. "hello-c" */
  const char* version;         /* plugin version, e.g. "1.2.0" */
  size_t kind_count;
  const th_kind_descriptor* const* kinds; /* kind_count pointers */
} th_plugin_descriptor;

/* The entry point: returns the plugin's static descriptor. Called once per load, on a host thread, after
 * the host validated the manifest. Must not start threads or allocate; may be called more than once. */
typedef const th_plugin_descriptor* (*th_plugin_entry_fn)(void);

#if defined(_WIN32)
#define TASKHOST_EXPORT __declspec(dllexport)
#else
#define TASKHOST_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define TASKHOST_EXTERN_C extern "C"
#else
#define TASKHOST_EXTERN_C
#endif

/* Declares the entry point: `TASKHOST_PLUGIN_ENTRY(&my_descriptor)`. Works in C and C++ alike. */
#define TASKHOST_PLUGIN_ENTRY(descriptor_ptr)                                    \
  TASKHOST_EXTERN_C TASKHOST_EXPORT const th_plugin_descriptor* taskhost_plugin_entry(void) { \
    return (descriptor_ptr);                                                     \
  }

/* ---------------------------------------------------------------------------------------------------
 * The manifest: what the file declares, readable by the host WITHOUT running any plugin code (no
 * dlopen, no static constructors). It is a NUL-terminated text in section TASKHOST_MANIFEST_SECTION:
 *
 *   taskhost-manifest 1\n abi=MAJOR.MINOR\n name=NAME\n version=VERSION\n kinds=K1,K2\n
 *
 * (one key=value per line, no spaces around '='). The host refuses an unknown ABI before loading, and
 * refuses a plugin whose descriptor disagrees with its manifest after loading.
 * Declare it once per plugin: TASKHOST_MANIFEST("hello-c", "1.0.0", "hello.c,echo.c");
 * ------------------------------------------------------------------------------------------------- */
#define TH_STR_(x) #x
#define TH_STR(x) TH_STR_(x)
#define TASKHOST_MANIFEST_TEXT(name, version, kinds)                                              \
  "taskhost-manifest 1\nabi=" TH_STR(TASKHOST_ABI_MAJOR) "." TH_STR(TASKHOST_ABI_MINOR) "\nname=" \
      name "\nversion=" version "\nkinds=" kinds "\n"
#if defined(__GNUC__) || defined(__clang__)
#define TASKHOST_MANIFEST(name, version, kinds)                                      \
  __attribute__((used, section(TASKHOST_MANIFEST_SECTION), aligned(1))) static const \
      char taskhost_manifest_[] = TASKHOST_MANIFEST_TEXT(name, version, kinds)
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TASKHOST_PLUGIN_H */
