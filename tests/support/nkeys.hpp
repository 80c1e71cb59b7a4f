// What `nk` and `nsc` would make for the NATS security tests, made here instead (neither tool is
// installed): ed25519 nkeys, signed NATS v2 JWTs for an operator, its accounts and their users, .creds
// files, and the nats-server configuration of an operator-mode server that trusts them.
//
// Keys come from OpenSSL's random generator and live only for the test. The nkey text encoding is the
// runtime's (transport/nats/nkey.hpp); what checks it is independent: nats-server decodes the keys and
// verifies the JWT signatures, cnats decodes the seeds and signs the server's nonce.
//
// Thread rule: plain values and free functions.
#pragma once

#include "transport/nats/nkey.hpp"

#include <boost/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace taskhost::testing::nkeys {

using transport::nats::nkey::Raw;
using transport::nats::nkey::Type;

struct KeyPair {
  Type type{};
  Raw seed{};    // the ed25519 private seed
  Raw public_raw{};

  static KeyPair make(Type type);
  std::string public_key() const;  // "U...", "A...", "O..."
  std::string seed_text() const;   // "SU...", "SA...", "SO..."
  std::string sign(std::string_view data) const;  // the raw 64-byte ed25519 signature
};

// A NATS v2 JWT for `subject`, signed by `issuer`: {"jti","iat","iss","sub","name","nats": nats}, with
// "version": 2 added to `nats` (which carries the "type").
std::string jwt(const KeyPair& issuer, const std::string& subject, const std::string& name, boost::json::object nats);
std::string operator_jwt(const KeyPair& op, const std::string& system_account);
// An account whose limits are all unlimited, with JetStream storage unless `jetstream` is false (the
// system account may not have it).
std::string account_jwt(const KeyPair& op, const KeyPair& account, const std::string& name, bool jetstream = true);
std::string user_jwt(const KeyPair& account, const KeyPair& user, const std::string& name);
// A decorated .creds file, as `nsc generate creds` writes it.
std::string creds(const std::string& user_jwt, const KeyPair& user);

// An operator with a system account and one application account, and the server config that trusts
// them (operator JWT file, preloaded account JWTs); append to NatsServer::Options::extra_config.
struct Operator {
  KeyPair op = KeyPair::make(Type::operator_);
  KeyPair sys = KeyPair::make(Type::account);
  KeyPair account = KeyPair::make(Type::account);

  // Writes op.jwt into `dir` and returns the configuration lines.
  std::string server_config(const std::filesystem::path& dir) const;
};

void write_file(const std::filesystem::path& path, const std::string& text);

}  // namespace taskhost::testing::nkeys
