// Human-readable output of the CLI: state names, values, tables, event lines and progress bars.
// (--json output is the wire messages' JSON mapping instead; see common.hpp.)
#pragma once

#include "taskhost/v1/status.pb.h"

#include <google/protobuf/struct.pb.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::cli {

std::string state_name(v1::TaskState state);  // "succeeded", "waiting_input", ...
// A string value as its text, anything else as compact JSON.
std::string value_text(const google::protobuf::Value& value);
std::string progress_text(const v1::Progress& progress);  // "3/5 steps", "40%", "7 items"
// "[#######.............]" for a known total, empty otherwise.
std::string progress_bar(const v1::Progress& progress, int width);
// One line: "succeeded: Hello, Ada!" / "failed: COMPONENT_NOT_FOUND (rejected): no plugin serves ...".
std::string completion_text(const v1::TaskCompletion& completion);
// One line for an event, without the task id: "state running (started ...)", "progress 3/5 steps", ...
std::string event_text(const v1::TaskEvent& event);

// `word` as one shell word: unchanged when it needs no quoting, else in single quotes (so a printed
// command can be pasted back, whatever the task id holds).
std::string shell_word(std::string_view word);

// Aligned columns, the first row the header, one line per row: columns by display width (UTF-8 aware:
// wide characters take two), control characters in cells escaped, cells over 100 columns clipped ("…").
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// Terminal columns `text` (UTF-8) takes.
size_t display_width(std::string_view text);

}  // namespace taskhost::cli
