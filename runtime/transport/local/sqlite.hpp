// A thin RAII layer over the sqlite3 C API: a connection, prepared statements, typed bind/column.
// Errors throw SqliteError with SQLite's message and the statement that failed.
//
// Thread rule: one Database (and its statements) is used by one thread at a time; SQLite's default
// serialized build makes separate connections safe to use from different threads.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace taskhost::transport::local {

class SqliteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Statement;

class Database {
 public:
  // Opens (creating if `create`) the file; read_only opens without write access.
  Database(const std::filesystem::path& file, bool create, bool read_only = false);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);  // one or more statements, no results
  Statement prepare(std::string_view sql);
  int64_t changes() const;
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared statement; reset() makes it reusable. Indexes are 1-based for bind, 0-based for columns.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);

  // Steps once: true while a row is available, false when done.
  bool step();
  // Steps to completion (INSERT/UPDATE/DELETE), then resets for reuse.
  void run();
  void reset();  // also clears bindings

  int64_t column_int(int index) const;
  std::string column_text(int index) const;
  std::string column_blob(int index) const;
  bool column_is_null(int index) const;

 private:
  [[noreturn]] void fail(int rc) const;
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

}  // namespace taskhost::transport::local
