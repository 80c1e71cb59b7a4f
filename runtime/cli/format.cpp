#include "cli/format.hpp"

#include "api/json.hpp"
#include "common/escape_controls.hpp"
#include "common/utf8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <clocale>
#include <cmath>
#include <cwchar>

#include <wchar.h>

namespace taskhost::cli {

std::string state_name(v1::TaskState state) {
  std::string name = v1::TaskState_Name(state);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

std::string value_text(const google::protobuf::Value& value) {
  if (value.kind_case() == google::protobuf::Value::kStringValue) return value.string_value();
  return api::to_json(value);
}

namespace {

std::string number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{:.2f}", v);
}

}  // namespace

std::string progress_text(const v1::Progress& p) {
  std::string text;
  if (p.total() > 0) {
    text = number(p.current()) + "/" + number(p.total());
  } else {
    text = number(p.current());
  }
  if (!p.unit().empty()) text += " " + p.unit();
  if (!p.label().empty()) text += " " + p.label();
  return text;
}

std::string progress_bar(const v1::Progress& p, int width) {
  if (p.total() <= 0 || width <= 0) return {};
  const double fraction = std::clamp(p.current() / p.total(), 0.0, 1.0);
  const int filled = static_cast<int>(std::lround(fraction * width));
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') + "]";
}

std::string shell_word(std::string_view word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    return std::isalnum(u) != 0 || std::string_view("._-+:,/=@%").find(ch) != std::string_view::npos;
  });
  if (plain) return std::string(word);
  std::string out = "'";
  for (char ch : word) {
    if (ch == '\'') out += "'\\''";  // close, an escaped quote, reopen
    else out += ch;
  }
  return out + "'";
}

namespace {

std::string completion_text_raw(const v1::TaskCompletion& c) {
  std::string text = state_name(c.state());
  if (c.has_output()) return text + ": " + value_text(c.output());
  if (c.has_error()) {
    const auto& e = c.error();
    text += ": ";
    if (e.code() != v1::ERROR_CODE_UNSPECIFIED) text += v1::ErrorCode_Name(e.code());
    if (!e.kind().empty()) text += " (" + e.kind() + ")";
    if (!e.message().empty()) text += (text.back() == ' ' ? "" : ": ") + e.message();
    return text;
  }
  if (c.has_components()) {
    text += ": kinds";
    for (const auto& k : c.components().components()) text += " " + k.component_id();
  }
  return text;
}

std::string event_text_raw(const v1::TaskEvent& e) {
  switch (e.event_case()) {
    case v1::TaskEvent::kState:
      return "state " + state_name(e.state().state()) + (e.state().detail().empty() ? "" : " (" + e.state().detail() + ")");
    case v1::TaskEvent::kProgress: return "progress " + progress_text(e.progress());
    case v1::TaskEvent::kOutput: {
      std::string delta = e.output().delta();
      while (!delta.empty() && (delta.back() == '\n' || delta.back() == '\r')) delta.pop_back();
      return "output[" + e.output().stream() + "] " + delta;
    }
    case v1::TaskEvent::kArtifact:
      return "artifact " + e.artifact().name() + " (" + e.artifact().media_type() + ") " + e.artifact().uri();
    case v1::TaskEvent::kInputRequest:
      return "input requested [" + e.input_request().request_id() + "]: " + e.input_request().prompt();
    case v1::TaskEvent::kMessage: {
      std::string text = "message: " + e.message().text();
      if (e.message().has_data()) text += " " + value_text(e.message().data());
      return text;
    }
    case v1::TaskEvent::EVENT_NOT_SET: break;
  }
  return "event";
}

}  // namespace

// Plugin text is shown with its control characters escaped (common/escape_controls.hpp): a CR/LF or an
// ESC sequence in a detail or message must not forge lines or repaint the terminal. Output deltas are
// the exception: they are the program's own output, shown as it wrote it.
std::string completion_text(const v1::TaskCompletion& c) { return escaped_controls(completion_text_raw(c)); }

std::string event_text(const v1::TaskEvent& e) {
  return e.has_output() ? event_text_raw(e) : escaped_controls(event_text_raw(e));
}

size_t display_width(std::string_view text) {
  // The C library's tables (wcwidth) under a UTF-8 character type: "é" is one column, "中" two.
  static const bool utf8 = std::setlocale(LC_CTYPE, "C.UTF-8") != nullptr;
  size_t width = 0;
  std::mbstate_t state{};
  for (size_t i = 0; i < text.size();) {
    wchar_t wc = 0;
    const size_t n = utf8 ? std::mbrtowc(&wc, text.data() + i, text.size() - i, &state) : 1;
    if (n == 0 || n == static_cast<size_t>(-1) || n == static_cast<size_t>(-2)) {
      ++width;  // a byte that is not UTF-8: one column, as the terminal's replacement character
      ++i;
      state = {};
      continue;
    }
    const int w = utf8 ? ::wcwidth(wc) : 1;
    width += w < 0 ? 1 : static_cast<size_t>(w);
    i += n;
  }
  return width;
}

namespace {

// A table cell of at most `max` columns: a longer one is cut before the character that would pass
// max - 1 and ends in "…". One task's 64 KiB detail padded every row of a list to its width (QA: 1.5 MB
// printed for 40 tasks); the whole text is in `status ID` and --json.
std::string clipped(const std::string& cell, size_t max) {
  if (display_width(cell) <= max) return cell;
  size_t end = 0;
  size_t width = 0;
  while (end < cell.size()) {
    size_t n = utf8_sequence_length(cell, end);
    if (n == 0) n = 1;
    const size_t w = display_width(std::string_view(cell).substr(end, n));
    if (width + w > max - 1) break;
    width += w;
    end += n;
  }
  return cell.substr(0, end) + "…";
}

constexpr size_t kMaxCellWidth = 100;

}  // namespace

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& raw_rows) {
  // One row, one line: cells hold plugin text (details, versions, errors), each clipped to kMaxCellWidth.
  std::vector<std::vector<std::string>> rows = raw_rows;
  for (auto& row : rows) {
    for (auto& cell : row) cell = clipped(escaped_controls(cell), kMaxCellWidth);
  }
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    out << line << "\n";
  }
}

}  // namespace taskhost::cli
