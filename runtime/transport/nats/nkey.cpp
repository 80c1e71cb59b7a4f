#include "transport/nats/nkey.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

namespace taskhost::transport::nats::nkey {
namespace {

constexpr uint8_t kSeedPrefix = 18 << 3;  // 'S'
constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kSeedBytes = 2 + 32 + 2;  // prefix, key, CRC

uint16_t crc16(const uint8_t* data, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; ++i) {
    crc ^= static_cast<uint16_t>(data[i] << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// False on a character outside the alphabet. `out` is wiped by the caller.
bool unbase32(std::string_view text, std::vector<uint8_t>& out) {
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    uint32_t v;
    if (c >= 'A' && c <= 'Z') v = static_cast<uint32_t>(c - 'A');
    else if (c >= '2' && c <= '7') v = static_cast<uint32_t>(c - '2' + 26);
    else {
      OPENSSL_cleanse(&buffer, sizeof buffer);
      return false;
    }
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  OPENSSL_cleanse(&buffer, sizeof buffer);
  return true;
}

// `bytes` must have room for two more.
std::string with_crc(std::vector<uint8_t> bytes) {
  const uint16_t crc = crc16(bytes.data(), bytes.size());
  bytes.push_back(static_cast<uint8_t>(crc & 0xff));
  bytes.push_back(static_cast<uint8_t>(crc >> 8));
  std::string out = base32(bytes.data(), bytes.size());
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return out;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::account: return "an account";
    case Type::cluster: return "a cluster";
    case Type::server: return "a server";
    case Type::operator_: return "an operator";
    case Type::user: return "a user";
  }
  return "an unknown";
}

// One line of a key file: as it is (cnats takes a seed with whatever is around it) and without the
// blanks and '\r' around it (to tell markers and empty lines).
struct Line {
  std::string_view raw;
  std::string_view trimmed;
};

// The file's lines, split at '\n' only as cnats does; blank ones dropped.
std::vector<Line> lines_of(std::string_view text) {
  std::vector<Line> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    Line line{text.substr(0, end), text.substr(0, end)};
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    auto& t = line.trimmed;
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t' || t.front() == '\r')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\r')) t.remove_suffix(1);
    if (!t.empty()) out.push_back(line);
  }
  return out;
}

bool is_marker(const Line& line) {
  return line.trimmed.size() >= 6 && line.trimmed.starts_with("---") && line.trimmed.ends_with("---");
}

// The lines between "-----BEGIN ...-----" and "------END ...------" markers: a .creds file's user JWT,
// then its seed.
std::vector<std::string_view> decorated_blocks(const std::vector<Line>& lines) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i + 2 < lines.size(); ++i) {
    if (is_marker(lines[i]) && !is_marker(lines[i + 1]) && is_marker(lines[i + 2])) {
      out.push_back(lines[i + 1].raw);
      i += 2;
    }
  }
  return out;
}

// A line without its indentation, which cnats skips when it looks for "SU".
std::string_view unindented(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  return line;
}

// Where cnats 3.4 finds the seed: the second decorated block (the first is a JWT), else the first line
// starting with "SU" after its indentation. Empty when there is neither.
std::string_view seed_candidate(const std::vector<Line>& lines) {
  const auto blocks = decorated_blocks(lines);
  if (blocks.size() >= 2) return blocks[1];
  for (const auto& line : lines) {
    if (unindented(line.raw).starts_with("SU")) return unindented(line.raw);
  }
  return {};
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// The public key of the user seed in `path`, as cnats will find it there; `key` names the setting in
// errors. With `creds`, the file must hold a user JWT block before the seed, as a .creds file does.
std::string user_public_key_in(const std::string& path, std::string_view key, bool creds) {
  const auto fail = [&](std::string_view what) {
    return std::runtime_error(fmt::format("[nats] {}: '{}' {}", key, path, what));
  };
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in || in.bad()) throw std::runtime_error(fmt::format("[nats] {}: cannot read '{}'", key, path));
  }
  struct Wipe {
    std::string& s;
    ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
  } wipe{text};

  const auto lines = lines_of(text);
  if (creds && decorated_blocks(lines).empty()) throw fail("holds no user JWT (-----BEGIN NATS USER JWT-----)");
  std::string_view candidate = seed_candidate(lines);
  if (candidate.empty()) {
    // Not where cnats would look; a seed of another type is worth naming, though.
    for (const auto& line : lines) {
      const auto text = unindented(line.raw);
      if (text.size() > 2 && text[0] == 'S' && text[1] >= 'A' && text[1] <= 'Z') {
        candidate = text;
        break;
      }
    }
    if (candidate.empty()) throw fail("holds no user nkey seed (a line starting with SU)");
  }
  // cnats would take these as part of the seed and fail every connect (retried until connect_timeout).
  if (candidate.find_first_of(" \t\r") != std::string_view::npos) {
    throw fail("has blanks or a carriage return (a CRLF line end) around the seed, which cnats reads as part of it");
  }
  Seed seed;
  try {
    decode_seed(candidate, seed);
  } catch (const std::invalid_argument& e) {
    throw fail(fmt::format("holds no valid nkey seed: {}", e.what()));
  }
  if (seed.type != Type::user) throw fail(fmt::format("holds {} seed, not a user seed (SU...)", type_name(seed.type)));
  return encode_public(Type::user, ed25519_public(seed.raw));
}

}  // namespace

Seed::~Seed() { OPENSSL_cleanse(raw.data(), raw.size()); }

std::string base32(const uint8_t* data, size_t size) {
  std::string out;
  out.reserve((size * 8 + 4) / 5);  // no reallocation leaves a copy of a seed behind
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < size; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    while (bits >= 5) {
      out += kBase32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

std::string encode_public(Type type, const Raw& key) {
  std::vector<uint8_t> bytes;
  bytes.reserve(1 + key.size() + 2);
  bytes.push_back(static_cast<uint8_t>(type));
  bytes.insert(bytes.end(), key.begin(), key.end());
  return with_crc(std::move(bytes));
}

std::string encode_seed(Type type, const Raw& seed) {
  const auto t = static_cast<uint8_t>(type);
  std::vector<uint8_t> bytes;
  bytes.reserve(kSeedBytes);  // room for the CRC too: no reallocation leaves a copy of the seed behind
  bytes.push_back(static_cast<uint8_t>(kSeedPrefix | (t >> 5)));
  bytes.push_back(static_cast<uint8_t>((t & 31) << 3));
  bytes.insert(bytes.end(), seed.begin(), seed.end());
  return with_crc(std::move(bytes));
}

void decode_seed(std::string_view text, Seed& out) {
  std::vector<uint8_t> bytes;
  bytes.reserve(text.size() * 5 / 8 + 1);  // no reallocation leaves a copy of a seed behind
  const bool ok = unbase32(text, bytes);
  const auto wipe = [&] { OPENSSL_cleanse(bytes.data(), bytes.size()); };
  if (!ok || bytes.size() != kSeedBytes) {
    wipe();
    throw std::invalid_argument(!ok ? "the seed is not base32 (A-Z, 2-7)" : "the seed has the wrong length");
  }
  const uint16_t crc = static_cast<uint16_t>(bytes[kSeedBytes - 2] | (bytes[kSeedBytes - 1] << 8));
  if (crc16(bytes.data(), kSeedBytes - 2) != crc) {
    wipe();
    throw std::invalid_argument("the seed's checksum does not match (a damaged or mistyped seed)");
  }
  if ((bytes[0] & 0xf8) != kSeedPrefix) {
    wipe();
    throw std::invalid_argument("not a seed (a seed starts with S)");
  }
  out.type = static_cast<Type>(((bytes[0] & 7) << 5) | (bytes[1] >> 3));
  std::copy(bytes.begin() + 2, bytes.begin() + 34, out.raw.begin());
  wipe();
}

Raw ed25519_public(const Raw& seed) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  Raw pub{};
  size_t len = pub.size();
  if (!key || EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &len) != 1 || len != pub.size()) {
    throw std::runtime_error("ed25519: cannot derive the public key (OpenSSL)");
  }
  return pub;
}

std::string user_public_key_from_seed_file(const std::string& path) {
  return user_public_key_in(path, "nkey_seed_file", false);
}

void check_credentials_file(const std::string& path) { (void)user_public_key_in(path, "credentials", true); }

}  // namespace taskhost::transport::nats::nkey
