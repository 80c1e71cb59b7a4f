#include "transport/local/wal_check.hpp"

#include "plugin/file_bytes.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <system_error>

namespace taskhost::transport::local {
namespace {

constexpr size_t kHeaderSize = 32;
constexpr size_t kFrameHeaderSize = 24;
constexpr uint32_t kMagicLittleEndianSums = 0x377f0682;
constexpr uint32_t kMagicBigEndianSums = 0x377f0683;

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint32_t le32(const unsigned char* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | uint32_t{p[0]};
}

// The log's running checksum over `size` bytes (a multiple of 8), continuing from s[0], s[1].
void checksum(const unsigned char* p, size_t size, bool big_endian, uint32_t s[2]) {
  for (size_t i = 0; i + 8 <= size; i += 8) {
    const uint32_t x0 = big_endian ? be32(p + i) : le32(p + i);
    const uint32_t x1 = big_endian ? be32(p + i + 4) : le32(p + i + 4);
    s[0] += x0 + s[1];
    s[1] += x1 + s[0];
  }
}

}  // namespace

std::string wal_damage(const std::filesystem::path& db_file) {
  const std::filesystem::path wal = db_file.string() + "-wal";
  std::error_code ec;
  const auto size = std::filesystem::file_size(wal, ec);
  if (ec || size == 0) return {};  // no log, or an empty one: nothing to replay
  std::string why;
  const auto read = plugin::read_file_bytes(wal, &why, std::numeric_limits<uint64_t>::max());  // not a plugin: no cap
  if (!read) return fmt::format("{} cannot be read: {}", wal.string(), why);
  const std::string& bytes = *read;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < kHeaderSize) {
    return fmt::format("{} is {} bytes, shorter than a write-ahead log's header", wal.string(), bytes.size());
  }
  const uint32_t magic = be32(p);
  if (magic != kMagicLittleEndianSums && magic != kMagicBigEndianSums) {
    return fmt::format("{} does not start with a write-ahead log header", wal.string());
  }
  const bool big_endian = magic == kMagicBigEndianSums;
  const uint32_t page_size = be32(p + 8);
  uint32_t sum[2] = {0, 0};
  checksum(p, 24, big_endian, sum);
  if (sum[0] != be32(p + 24) || sum[1] != be32(p + 28) || page_size < 512 || page_size > 65536 ||
      (page_size & (page_size - 1)) != 0) {
    return fmt::format("{} has a damaged header", wal.string());
  }
  const uint32_t salt1 = be32(p + 16);
  const uint32_t salt2 = be32(p + 20);
  const size_t frame_size = kFrameHeaderSize + page_size;
  size_t frame = 0;
  for (size_t at = kHeaderSize; at + frame_size <= bytes.size(); at += frame_size, ++frame) {
    const unsigned char* f = p + at;
    if (be32(f + 8) != salt1 || be32(f + 12) != salt2) return {};  // frames of an earlier generation: unused
    uint32_t next[2] = {sum[0], sum[1]};
    checksum(f, 8, big_endian, next);
    checksum(f + kFrameHeaderSize, page_size, big_endian, next);
    if (next[0] == be32(f + 16) && next[1] == be32(f + 20)) {
      sum[0] = next[0];
      sum[1] = next[1];
      continue;
    }
    // A torn tail is the last transaction's, never committed. A commit of this generation after the bad
    // frame was written (and synced) after it: what SQLite would drop from here on was committed.
    for (size_t later = at + frame_size; later + frame_size <= bytes.size(); later += frame_size) {
      const unsigned char* l = p + later;
      if (be32(l + 8) == salt1 && be32(l + 12) == salt2 && be32(l + 4) != 0) {
        return fmt::format("{} is damaged at frame {} (byte {}), before later committed frames", wal.string(),
                           frame, at);
      }
    }
    return {};
  }
  return {};
}

}  // namespace taskhost::transport::local
