/*
 * hello-c: a taskhost plugin in plain C99 against <taskhost/plugin.h> only.
 *
 *   hello.greet  {"name":"Ada"}        -> "Hello, Ada!"   (a JSON string)
 *   hello.sum    {"numbers":[1,2,3.5]} -> 6.5
 *
 * Both kinds finish inside on_start (the sink may be called from inside any plugin call), so there is
 * no thread and no per-task state: on_cancel has nothing to stop and on_release nothing to free.
 * The JSON handling is deliberately minimal (flat objects only); a real plugin would use a parser.
 */
#include <taskhost/plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our executor: just the host table, which stays valid until on_destroy_executor returns. */
struct th_executor {
  const th_host_api* host;
};

static th_status create_executor(const th_host_api* host, th_executor** out, th_error_buf* err) {
  th_executor* self = (th_executor*)malloc(sizeof(*self));
  if (self == NULL) return th_error_set(err, TH_FAILED, "out of memory");
  self->host = host;
  *out = self;
  return TH_OK;
}

static void destroy_executor(th_executor* self) { free(self); }

/* Points just past `"key"` and the colon in the NUL-terminated `json`, or NULL. */
static const char* find_value(const char* json, const char* key) {
  size_t key_len = strlen(key);
  const char* at = json;
  while ((at = strstr(at, "\"")) != NULL) {
    if (strncmp(at + 1, key, key_len) == 0 && at[key_len + 1] == '"') {
      const char* p = at + key_len + 2;
      while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
      if (*p == ':') {
        ++p;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
        return p;
      }
    }
    ++at;
  }
  return NULL;
}

/* The input as a NUL-terminated copy (the host's bytes are not terminated). Caller frees. */
static char* input_text(const th_task_info* info) {
  char* text = (char*)malloc(info->input.size + 1);
  if (text == NULL) return NULL;
  if (info->input.size > 0) memcpy(text, info->input.data, info->input.size);
  text[info->input.size] = '\0';
  return text;
}

static th_status complete_ok(const th_executor* self, th_task_ref task, const char* json) {
  th_result r;
  memset(&r, 0, sizeof(r));
  r.struct_size = sizeof(r);
  r.state = TH_STATE_SUCCEEDED;
  r.output.data = (const uint8_t*)json;
  r.output.size = strlen(json);
  return self->host->complete(self->host->context, task, &r);
}

static th_status complete_invalid(const th_executor* self, th_task_ref task, const char* why) {
  th_result r;
  memset(&r, 0, sizeof(r));
  r.struct_size = sizeof(r);
  r.state = TH_STATE_FAILED;
  r.error_code = TH_ERROR_INVALID_INPUT;
  r.error_message = why;
  return self->host->complete(self->host->context, task, &r);
}

/* {"name":"Ada"} -> "Hello, Ada!" */
static th_status greet(th_executor* self, const th_task_info* info, th_error_buf* err) {
  char out[256];
  size_t n = 0;
  const char* p;
  char* input = input_text(info);
  if (input == NULL) return th_error_set(err, TH_FAILED, "out of memory");
  p = find_value(input, "name");
  if (p == NULL || *p != '"') {
    free(input);
    complete_invalid(self, info->task, "input must be an object with a \"name\" string");
    return TH_OK;
  }
  n = (size_t)snprintf(out, sizeof(out), "\"Hello, ");
  /* Copy the name, keeping JSON escapes as they are; stop at the closing quote. */
  for (++p; *p != '\0' && *p != '"' && n + 8 < sizeof(out); ++p) {
    if (*p == '\\' && p[1] != '\0') out[n++] = *p++;
    out[n++] = *p;
  }
  free(input);
  memcpy(out + n, "!\"", 3);
  complete_ok(self, info->task, out);
  return TH_OK;
}

/* {"numbers":[1,2,3.5]} -> 6.5 */
static th_status sum(th_executor* self, const th_task_info* info, th_error_buf* err) {
  char out[64];
  double total = 0;
  char* end = NULL;
  const char* p;
  char* input = input_text(info);
  if (input == NULL) return th_error_set(err, TH_FAILED, "out of memory");
  p = find_value(input, "numbers");
  if (p == NULL || *p != '[') {
    free(input);
    complete_invalid(self, info->task, "input must be an object with a \"numbers\" array");
    return TH_OK;
  }
  for (++p;;) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') ++p;
    if (*p == ']') break;
    total += strtod(p, &end);
    if (end == p) {
      free(input);
      complete_invalid(self, info->task, "\"numbers\" must hold only numbers");
      return TH_OK;
    }
    p = end;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') ++p;
    if (*p == ',') ++p;
  }
  free(input);
  /* JSON has no infinity or NaN: a sum past the largest double (1e308 + 1e308) is the input's fault. */
  if (!isfinite(total)) {
    complete_invalid(self, info->task, "the sum of \"numbers\" is not a finite number");
    return TH_OK;
  }
  snprintf(out, sizeof(out), "%.17g", total);
  complete_ok(self, info->task, out);
  return TH_OK;
}

/* Nothing runs after on_start returns, so there is nothing to cancel: the task already ended. */
static th_status cancel(th_executor* self, const th_task_info* info, th_error_buf* err) {
  (void)self;
  (void)info;
  (void)err;
  return TH_OK;
}

static const th_kind_descriptor greet_kind = {
    .struct_size = sizeof(th_kind_descriptor),
    .kind = "hello.greet",
    .encoding = TH_ENCODING_JSON,
    .on_create_executor = create_executor,
    .on_destroy_executor = destroy_executor,
    .on_start = greet,
    .on_cancel = cancel,
    .description = "Greets {\"name\": ...} by name",
    .input_schema_json = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}",
    .output_schema_json = "{\"type\":\"string\"}",
};

static const th_kind_descriptor sum_kind = {
    .struct_size = sizeof(th_kind_descriptor),
    .kind = "hello.sum",
    .encoding = TH_ENCODING_JSON,
    .on_create_executor = create_executor,
    .on_destroy_executor = destroy_executor,
    .on_start = sum,
    .on_cancel = cancel,
    .description = "Adds {\"numbers\": [...]}",
    .input_schema_json = "{\"type\":\"object\",\"properties\":{\"numbers\":{\"type\":\"array\"}}}",
    .output_schema_json = "{\"type\":\"number\"}",
};

static const th_kind_descriptor* const kinds[] = {&greet_kind, &sum_kind};

static const th_plugin_descriptor plugin = {
    .struct_size = sizeof(th_plugin_descriptor),
    .abi_major = TASKHOST_ABI_MAJOR,
    .abi_minor = TASKHOST_ABI_MINOR,
    .name = "hello-c",
    .version = "1.0.0",
    .kind_count = sizeof(kinds) / sizeof(kinds[0]),
    .kinds = kinds,
};

/* What the host reads before loading: must list the same name, version and kinds as `plugin`. */
TASKHOST_MANIFEST("hello-c", "1.0.0", "hello.greet,hello.sum");

TASKHOST_PLUGIN_ENTRY(&plugin)
