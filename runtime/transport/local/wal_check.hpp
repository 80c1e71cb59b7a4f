// Damage in the store's write-ahead log that SQLite would silently pass over. After an unclean stop the
// latest commits live only in `taskhost.db-wal`. SQLite replays its frames up to the first one whose
// checksum fails and drops the rest without a word, which is right for a torn tail (the last,
// uncommitted transaction) but turns damage in the middle into lost tasks and results, and ended tasks
// that run again. It also resets a log whose header is bad, destroying what a salvage could read.
//
// So before the store opens the file, the log is read here with the format's own rules (sqlite.org/
// fileformat2.html#walformat): a header that is not a WAL header, or a frame that fails its checksum
// followed by a COMMIT frame of the same log generation (its salts), is damage to committed data.
#pragma once

#include <filesystem>
#include <string>

namespace taskhost::transport::local {

// Empty when `db_file`'s log is absent, empty or intact up to where only an uncommitted tail could be torn;
// otherwise what is wrong with it, in words.
std::string wal_damage(const std::filesystem::path& db_file);

}  // namespace taskhost::transport::local
