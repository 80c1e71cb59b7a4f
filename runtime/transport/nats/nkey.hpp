// NATS nkeys: ed25519 keys written as text. A public key is base32 (RFC 4648, no padding) of one prefix
// byte naming its type ('U' user, 'A' account, 'O' operator...), the 32-byte key and a CRC16 (XMODEM,
// little-endian) of both; a seed ("SU..." for a user) is the same with two prefix bytes, 'S' plus the
// type, and the 32-byte ed25519 private seed.
//
// What the host needs for `[nats] nkey_seed_file`: the user's public key, derived from the seed in that
// file (cnats is given both; it reads the seed itself to sign the server's nonce); and for `credentials`,
// a check that the .creds file is one cnats can use, since cnats reports a file it cannot read or parse
// only as a failed connect, retried until connect_timeout. No function here puts a seed, or a part of
// one, into an error message.
//
// Thread rule: free functions without shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace taskhost::transport::nats::nkey {

using Raw = std::array<uint8_t, 32>;

// The prefix byte of each key type (its base32 letter in the comment).
enum class Type : uint8_t {
  account = 0 << 3,    // A
  cluster = 2 << 3,    // C
  server = 13 << 3,    // N
  operator_ = 14 << 3, // O
  user = 20 << 3,      // U
};

// A decoded seed. The destructor wipes the key bytes.
struct Seed {
  Type type{};
  Raw raw{};
  Seed() = default;
  Seed(const Seed&) = delete;
  Seed& operator=(const Seed&) = delete;
  ~Seed();
};

// RFC 4648 base32 without padding, as nkeys are written.
std::string base32(const uint8_t* data, size_t size);
std::string encode_public(Type type, const Raw& key);
std::string encode_seed(Type type, const Raw& seed);
// Throws std::invalid_argument (the reason, never the text) unless `text` is a well-formed seed.
void decode_seed(std::string_view text, Seed& out);
// The ed25519 public key of a 32-byte private seed (OpenSSL libcrypto).
Raw ed25519_public(const Raw& seed);

// The public key ("U...") of the user seed in `path`: the seed block of a decorated file, otherwise the
// first line starting with "SU" after its indentation — where cnats 3.4 looks too. Throws
// std::runtime_error "[nats] nkey_seed_file: ..." naming the file when it cannot be read or holds no
// valid user seed, or the seed has blanks or a '\r' beside it on its line (cnats would fail on those).
std::string user_public_key_from_seed_file(const std::string& path);
// A .creds file cnats can use: readable, a user JWT block, then a valid user seed. Throws
// std::runtime_error "[nats] credentials: ..." naming the file. Whether the server trusts the JWT, and
// whether the seed is the JWT's key, only the server can say.
void check_credentials_file(const std::string& path);

}  // namespace taskhost::transport::nats::nkey
