/* The plugin side of bench_abi_call: one kind whose on_reconcile does the benchmark's unit of work, a
 * relaxed atomic increment of a per-executor counter, exactly what the direct C++ counterpart does. */
#include <stdlib.h>
#include <taskhost/plugin.h>

TASKHOST_MANIFEST("bench-abi-call", "1.0.0", "bench.abi_call");

struct th_executor {
  unsigned long counter;
};

static th_status create_executor(const th_host_api* host, th_executor** out, th_error_buf* err) {
  (void)host;
  *out = (th_executor*)calloc(1, sizeof(th_executor));
  return *out ? TH_OK : th_error_set(err, TH_FAILED, "out of memory");
}
static void destroy_executor(th_executor* self) { free(self); }
static th_status start(th_executor* self, const th_task_info* info, th_error_buf* err) {
  (void)self;
  (void)info;
  return th_error_set(err, TH_UNSUPPORTED, "benchmark kind runs no tasks");
}
static th_status cancel(th_executor* self, const th_task_info* info, th_error_buf* err) {
  (void)self;
  (void)info;
  (void)err;
  return TH_OK;
}
static th_status reconcile(th_executor* self, const th_task_info* info, th_error_buf* err) {
  (void)info;
  (void)err;
  __atomic_add_fetch(&self->counter, 1, __ATOMIC_RELAXED);
  return TH_OK;
}

static const th_kind_descriptor kind = {
    .struct_size = sizeof(th_kind_descriptor),
    .kind = "bench.abi_call",
    .encoding = TH_ENCODING_JSON,
    .on_create_executor = create_executor,
    .on_destroy_executor = destroy_executor,
    .on_start = start,
    .on_cancel = cancel,
    .on_reconcile = reconcile,
};
static const th_kind_descriptor* const kinds[] = {&kind};
static const th_plugin_descriptor plugin = {
    .struct_size = sizeof(th_plugin_descriptor),
    .abi_major = TASKHOST_ABI_MAJOR,
    .abi_minor = TASKHOST_ABI_MINOR,
    .name = "bench-abi-call",
    .version = "1.0.0",
    .kind_count = 1,
    .kinds = kinds,
};
TASKHOST_PLUGIN_ENTRY(&plugin)
